"""Website quirks beyond the shared contract: upsert by content hash, signatures, settings,
field validation and the public pages (docs/protocols.md)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests
from fastapi import FastAPI

from channels.base import Remote, SharedStore
from channels.errors import AuthExpired, ChannelDisabled, Permanent
from channels.sandbox.common import SandboxState
from channels.sandbox.website import create_app
from channels.website import WebsiteChannel
from publisher.channel_config import build_channel, website_settings
from publisher.config import Settings
from tests.contract.harnesses import ContractHarness, make_website
from tests.support import sample_publication, serve_in_thread

RSS_ITEM = "./channel/item"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@pytest.fixture
def site() -> Iterator[ContractHarness]:
    with make_website() as harness:
        yield harness


def page(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


def test_same_content_hash_again_changes_nothing(site: ContractHarness) -> None:
    pub = sample_publication()
    site.channel.create(pub)
    site.channel.create(pub)
    site.channel.update(replace(pub, content_hash="1" * 64), Remote(pub.external_id))

    state = site.sandbox.inspect()
    assert state["counters"]["creates"] == 1
    assert state["counters"]["unchanged"] == 1
    assert state["counters"]["updates"] == 1
    assert state["records"]["articles"][pub.external_id]["versions"] == 2


def test_payload_fields_reach_the_cms(site: ContractHarness) -> None:
    pub = sample_publication()
    receipt = site.channel.create(pub)

    article = site.sandbox.inspect()["records"]["articles"][pub.external_id]
    assert article["column"] == pub.domain_code
    assert article["publisher"] == pub.department_name
    assert article["index_no"] == pub.index_no
    assert article["written_date"] == "2026-11-02"
    assert article["keywords"] == list(pub.keywords)
    assert receipt.url == f"{site.sandbox.url}/articles/{pub.external_id}.html"
    assert receipt.content_hash == pub.content_hash


def test_withdrawn_article_can_be_published_again(site: ContractHarness) -> None:
    pub = sample_publication()
    site.channel.create(pub)
    site.channel.delete(Remote(pub.external_id))

    site.channel.create(pub)

    assert site.copies(pub) == 1


def test_body_over_one_megabyte_is_refused_naming_the_field(site: ContractHarness) -> None:
    pub = sample_publication(body_html="<p>" + "字" * 400_000 + "</p>")

    with pytest.raises(Permanent) as refused:
        site.channel.create(pub)

    assert refused.value.http_status == 422
    assert (refused.value.message or "").startswith("content_html:")
    assert site.channel.preflight(pub)[0].field == "body_html"


def test_bad_external_id_is_refused(site: ContractHarness) -> None:
    with pytest.raises(Permanent) as refused:
        site.channel.create(sample_publication(external_id="项目 42"))

    assert refused.value.code == "invalid_id"


def test_wrong_secret_needs_reauthorisation(site: ContractHarness) -> None:
    # A refused signature is not fixed by a token refresh nor by editing the item: an operator
    # corrects the credentials, and the channel's deliveries wait meanwhile.
    channel = WebsiteChannel(site.sandbox.url, "sandbox", "not-the-secret", timeout=1)

    with pytest.raises(AuthExpired) as refused:
        channel.create(sample_publication())

    assert refused.value.refreshable is False
    assert refused.value.code == "bad_signature"
    assert refused.value.message == "X-Signature does not match"
    assert "not-the-secret" not in str(refused.value)
    assert site.sandbox.inspect()["records"] == {}


def test_stale_timestamp_needs_reauthorisation(site: ContractHarness) -> None:
    skewed = WebsiteChannel(
        site.sandbox.url, "sandbox", "sandbox-secret", timeout=1, clock=lambda: time.time() - 301
    )

    with pytest.raises(AuthExpired) as refused:
        skewed.lookup(sample_publication(), None)

    assert refused.value.refreshable is False
    assert "X-Timestamp" in (refused.value.message or "")


def test_sandbox_accepts_configured_credentials() -> None:
    app = create_app(SandboxState("website"), credentials={"cms-app": "s3cret"})
    with serve_in_thread(app) as url:
        good = WebsiteChannel(url, "cms-app", "s3cret", timeout=1)
        default = WebsiteChannel(url, "sandbox", "sandbox-secret", timeout=1)

        assert good.create(sample_publication()).url
        with pytest.raises(AuthExpired):
            default.create(sample_publication())


def test_api_base_with_a_path_prefix_signs_the_full_path() -> None:
    # The server verifies the path it sees; signing the path relative to the base would fail.
    outer = FastAPI()
    outer.mount("/cms", create_app(SandboxState("website")))
    with serve_in_thread(outer) as url:
        channel = WebsiteChannel(url + "/cms/", "sandbox", "sandbox-secret", timeout=1)

        receipt = channel.create(sample_publication())

        assert channel.lookup(sample_publication(), None) == receipt


def test_from_settings_names_what_to_set(store: SharedStore) -> None:
    unset = Settings(website_api_base=None, website_app_id="sandbox", website_secret=None)

    with pytest.raises(ChannelDisabled) as disabled:
        build_channel("website", unset, store)

    assert "PUBLISHER_WEBSITE_API_BASE" in str(disabled.value)
    assert "PUBLISHER_WEBSITE_SECRET" in str(disabled.value)
    assert "PUBLISHER_WEBSITE_APP_ID" not in str(disabled.value)


def test_from_settings_builds_the_adapter(store: SharedStore) -> None:
    settings = Settings(
        website_api_base="http://cms.example/",
        website_app_id="app",
        website_secret="secret",
        http_timeout_seconds=3,
    )

    channel = WebsiteChannel.from_settings(website_settings(settings), store)

    assert channel.api_base == "http://cms.example"
    assert channel.timeout == 3
    assert "secret" not in repr(channel)


def test_public_pages_show_the_article(site: ContractHarness) -> None:
    pub = sample_publication(title="关于<临时救助>的公示 & 说明")
    other = sample_publication(
        external_id="item-43",
        index_no="733099896/2026-00043",
        domain_code="education",
        title="2026年秋季学位申请指引",
    )
    receipt = site.channel.create(pub)
    site.channel.create(other)

    home = page(site.sandbox.url + "/")
    assert home.status_code == 200
    assert "关于&lt;临时救助&gt;的公示 &amp; 说明" in home.text
    assert "2026年秋季学位申请指引" in home.text

    assert receipt.url
    article = page(receipt.url)
    assert article.status_code == 200
    for label, value in [
        ("索引号", pub.index_no),
        ("发布机构", pub.department_name),
        ("成文日期", "2026-11-02"),
        ("发布日期", "2026-11-20"),
        ("文号", pub.doc_no or ""),
        ("主题词", "临时救助"),
    ]:
        assert label in article.text and value in article.text
    assert pub.body_html in article.text  # sanitised upstream: inserted as given
    assert "<临时救助>" not in article.text

    column = page(f"{site.sandbox.url}/columns/{pub.domain_code}/")
    assert column.status_code == 200
    assert "社会救助和社会福利" in column.text
    assert "临时救助" in column.text and "学位申请" not in column.text


def test_rss_and_sitemap_are_valid_xml_listing_the_article(site: ContractHarness) -> None:
    pub = sample_publication()
    receipt = site.channel.create(pub)

    rss = page(site.sandbox.url + "/rss.xml")
    assert rss.headers["content-type"].startswith("application/rss+xml")
    root = ET.fromstring(rss.content)
    assert root.tag == "rss" and root.get("version") == "2.0"
    items = root.findall(RSS_ITEM)
    assert [item.findtext("link") for item in items] == [receipt.url]
    assert items[0].findtext("title") == pub.title
    assert items[0].findtext("pubDate", "").endswith("+0800")
    assert pub.body_html == items[0].findtext("description")

    sitemap = ET.fromstring(page(site.sandbox.url + "/sitemap.xml").content)
    assert sitemap.tag == f"{SITEMAP}urlset"
    locs = [loc.text for loc in sitemap.iter(f"{SITEMAP}loc")]
    assert receipt.url in locs
    assert f"{site.sandbox.url}/columns/{pub.domain_code}/" in locs


def test_withdrawn_article_leaves_every_public_page(site: ContractHarness) -> None:
    pub = sample_publication()
    receipt = site.channel.create(pub)
    site.channel.delete(Remote(receipt.remote_id, receipt.url))

    assert receipt.url
    gone = page(receipt.url)
    assert gone.status_code == 404
    assert "该信息已撤回" in gone.text
    for path in ["/", f"/columns/{pub.domain_code}/", "/rss.xml", "/sitemap.xml"]:
        assert pub.title not in page(site.sandbox.url + path).text, path
        assert receipt.url not in page(site.sandbox.url + path).text, path


def test_unknown_article_page_is_404(site: ContractHarness) -> None:
    missing = page(site.sandbox.url + "/articles/nothing-here.html")
    assert missing.status_code == 404
    assert "页面不存在" in missing.text
