"""Catalogue quirks beyond the shared contract: 索引号 in the path, the 原文链接, signatures,
settings, and the public listing and entry pages (docs/protocols.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from channels.base import Publication, Remote, SharedStore
from channels.catalogue import CatalogueChannel
from channels.errors import AuthExpired, ChannelDisabled, Permanent
from publisher.channel_config import build_channel
from publisher.config import Settings
from tests.contract.harnesses import ContractHarness, make_catalogue
from tests.support import sample_publication

ORG = "733099896"


@pytest.fixture
def catalogue() -> Iterator[ContractHarness]:
    with make_catalogue() as harness:
        yield harness


def entry(serial: int, catecode: str, title: str, org: str = ORG) -> Publication:
    return sample_publication(
        external_id=f"item-{serial}",
        index_no=f"{org}/2026-{serial:05d}",
        catecode=catecode,
        title=title,
    )


def page(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


def listed_index_numbers(html: str) -> list[str]:
    return re.findall(r"<td>(\w+/\d{4}-\d{5})</td>", html)


def test_index_no_keeps_its_slash_and_the_receipt_is_the_entry_page(
    catalogue: ContractHarness,
) -> None:
    pub = sample_publication()

    receipt = catalogue.channel.create(pub)

    assert receipt.remote_id == pub.index_no
    assert receipt.url == f"{catalogue.sandbox.url}/{ORG}/content/{pub.index_no}.html"
    stored = catalogue.sandbox.inspect()["records"]["entries"][pub.index_no]
    assert stored["url"] == pub.website_url
    assert stored["catecode"] == pub.catecode
    assert stored["summary"] == pub.summary
    assert stored["validity"] == "有效"


def test_same_content_hash_again_changes_nothing(catalogue: ContractHarness) -> None:
    pub = sample_publication()
    catalogue.channel.create(pub)
    catalogue.channel.update(pub, Remote(pub.index_no))

    state = catalogue.sandbox.inspect()
    assert state["counters"]["creates"] == 1
    assert state["counters"]["unchanged"] == 1
    assert state["records"]["entries"][pub.index_no]["versions"] == 1


def test_entry_without_the_website_url_is_refused_naming_url(catalogue: ContractHarness) -> None:
    assert catalogue.channel.needs_website_url

    with pytest.raises(Permanent) as refused:
        catalogue.channel.create(sample_publication(website_url=None))

    assert (refused.value.message or "").startswith("url:")
    assert catalogue.copies(sample_publication()) == 0


def test_malformed_index_no_is_refused(catalogue: ContractHarness) -> None:
    with pytest.raises(Permanent) as refused:
        catalogue.channel.create(sample_publication(index_no="733099896/26-12"))

    assert refused.value.code == "invalid_index_no"
    assert "733099896/26-12" in (refused.value.message or "")


def test_wrong_secret_needs_reauthorisation(catalogue: ContractHarness) -> None:
    channel = CatalogueChannel(catalogue.sandbox.url, "sandbox", "wrong", timeout=1)

    with pytest.raises(AuthExpired) as refused:
        channel.create(sample_publication())

    assert refused.value.refreshable is False
    assert refused.value.code == "bad_signature"
    assert catalogue.sandbox.inspect()["records"] == {}


def test_from_settings_names_what_to_set(store: SharedStore) -> None:
    with pytest.raises(ChannelDisabled) as disabled:
        build_channel(
            "catalogue",
            Settings(catalogue_api_base=None, catalogue_app_id=None, catalogue_secret=None),
            store,
        )

    for name in ["API_BASE", "APP_ID", "SECRET"]:
        assert f"PUBLISHER_CATALOGUE_{name}" in str(disabled.value)


def test_section_listing_shows_every_category_of_the_section(catalogue: ContractHarness) -> None:
    welfare = entry(1, "0902", "临时救助资金发放公示")
    environment = entry(2, "0905", "松山湖水质监测月报")
    elsewhere = entry(3, "1001", "财政预算公开")
    other_org = entry(4, "0902", "其他机构的救助公示", org="007330010")
    for pub in (welfare, environment, elsewhere, other_org):
        catalogue.channel.create(pub)

    section = page(f"{catalogue.sandbox.url}/{ORG}/zwgkList.shtml?catecode=0900")
    assert section.status_code == 200
    for header in ["索引号", "名称", "发布机构", "成文日期", "发布日期"]:
        assert f"<th>{header}</th>" in section.text
    assert sorted(listed_index_numbers(section.text)) == [welfare.index_no, environment.index_no]

    one = page(f"{catalogue.sandbox.url}/{ORG}/zwgkList.shtml?catecode=0905")
    assert listed_index_numbers(one.text) == [environment.index_no]


def test_entry_page_shows_the_metadata_and_the_source_link(catalogue: ContractHarness) -> None:
    pub = sample_publication(summary="救助对象 <名单> 见附件")
    receipt = catalogue.channel.create(pub)

    assert receipt.url
    shown = page(receipt.url)
    assert shown.status_code == 200
    for label in ["索引号", "名称", "内容概述", "分类", "发布机构", "成文日期", "发布日期"]:
        assert f"<th>{label}</th>" in shown.text
    for label in ["文号", "主题词", "有效性", "原文链接"]:
        assert f"<th>{label}</th>" in shown.text
    assert pub.index_no in shown.text
    assert f'href="{pub.website_url}"' in shown.text
    assert "救助对象 &lt;名单&gt; 见附件" in shown.text
    short = page(f"{catalogue.sandbox.url}/{ORG}/content/2026-00042.html")
    assert short.status_code == 200 and pub.index_no in short.text


def test_revoked_entry_disappears(catalogue: ContractHarness) -> None:
    pub = sample_publication()
    kept = replace(entry(7, "0902", "仍然有效的公示"), website_url=pub.website_url)
    receipt = catalogue.channel.create(pub)
    catalogue.channel.create(kept)

    catalogue.channel.delete(Remote(receipt.remote_id, receipt.url))

    listing = page(f"{catalogue.sandbox.url}/{ORG}/zwgkList.shtml?catecode=0900")
    assert listed_index_numbers(listing.text) == [kept.index_no]
    assert receipt.url
    gone = page(receipt.url)
    assert gone.status_code == 404 and "该信息已撤销" in gone.text
