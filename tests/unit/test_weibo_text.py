"""The 140-unit Weibo composer: counting, cutting, never touching the link."""

from __future__ import annotations

import pytest

from channels.weibo_text import (
    ELLIPSIS,
    MIN_TITLE_CHARS,
    TooLong,
    compose_status,
    preflight,
    status_for,
    units,
)
from tests.support import sample_publication

URL = "http://127.0.0.1:8101/articles/item-42.html"  # 43 ASCII characters
TAIL_HALF_UNITS = 1 + 20  # " " + URL, counted as the 20 bytes of a short link


def test_units_count_cjk_as_one_ascii_as_half_rounding_up() -> None:
    assert units("政务公开") == 4
    assert units("abcd") == 2
    assert units("abc") == 2  # 1.5 rounds up
    assert units("【松山湖】…") == 6
    assert units("") == 0


def _summary_for(total_half_units: int, title: str = "临时救助公示") -> str:
    """A CJK summary (plus one ASCII char when odd) making the status that many half units."""
    fixed = 2 * units(f"【{title}】") + TAIL_HALF_UNITS
    remaining = total_half_units - fixed
    return "公" * (remaining // 2) + ("a" if remaining % 2 else "")


def test_exactly_140_units_passes_unchanged() -> None:
    summary = _summary_for(280)
    text = compose_status("临时救助公示", summary, URL)
    assert text == f"【临时救助公示】{summary} {URL}"
    assert units(text) == 140


def test_141_units_is_cut_with_ellipsis_and_keeps_the_link() -> None:
    summary = _summary_for(282)
    assert units(f"【临时救助公示】{summary} {URL}") == 141
    text = compose_status("临时救助公示", summary, URL)
    assert units(text) <= 140
    assert text.endswith(f"{ELLIPSIS} {URL}")
    assert text.startswith("【临时救助公示】公公")


def test_half_unit_over_still_counts_as_over() -> None:
    # 280 half units + 1 ASCII char = 140.5 → 141 after rounding up: must be cut.
    summary = _summary_for(281)
    text = compose_status("临时救助公示", summary, URL)
    assert text != f"【临时救助公示】{summary} {URL}"
    assert units(text) <= 140


def test_cut_prefers_a_sentence_end() -> None:
    sentence = "第一句话说明了发放对象和金额。"
    summary = sentence * 7 + "最后一句" + "很长" * 12
    text = compose_status("临时救助公示", summary, URL)
    body = text.removeprefix("【临时救助公示】").removesuffix(f" {URL}")
    assert units(text) <= 140
    # The cut falls at a sentence end, whose mark gives way to the ellipsis.
    assert body.endswith(f"和金额{ELLIPSIS}")


def test_long_title_is_cut_and_summary_dropped() -> None:
    title = "松山湖" * 60
    text = compose_status(title, "摘要", URL)
    assert units(text) <= 140
    assert text.endswith(f"{ELLIPSIS}】 {URL}")
    assert "摘要" not in text


def url_of(size: int) -> str:
    return "http://h/" + "x" * (size - len("http://h/"))


def test_title_that_cannot_keep_enough_characters_is_refused() -> None:
    # A link counts 20 half units, plus each of its bytes beyond 140. Just enough room for
    # MIN_TITLE_CHARS characters and the ellipsis: accepted; one byte more: refused.
    room = 280 - 2 * units("【】…") - 1
    fitting = url_of(room - 2 * MIN_TITLE_CHARS - 20 + 140)
    text = compose_status("松山湖" * 10, "", fitting)
    assert units(text) == 140 and fitting in text
    with pytest.raises(TooLong):
        compose_status("松山湖" * 10, "摘要", fitting + "x")


def test_preflight_finds_missing_url_unsafe_domain_and_unfittable_title() -> None:
    assert preflight(sample_publication()) == []
    [missing] = preflight(sample_publication(website_url=None))
    assert (missing.channel, missing.field) == ("weibo", "website_url")
    [unsafe] = preflight(sample_publication(), safe_domains=["www.dg.gov.cn"])
    assert unsafe.rule == "safe_domain"
    assert preflight(sample_publication(), safe_domains=["127.0.0.1"]) == []
    long_url = "http://127.0.0.1:8101/articles/" + "x" * 400
    [title] = preflight(sample_publication(website_url=long_url))
    assert (title.field, title.rule) == ("title", "max_units")


def test_status_for_uses_short_title_and_correction_prefix() -> None:
    pub = sample_publication(short_title="临时救助资金公示")
    assert status_for(pub).startswith("【临时救助资金公示】公示本年度")
    assert status_for(pub, correction=True).startswith("【更正】【临时救助资金公示】")


def test_a_long_article_url_counts_as_a_short_link_and_cuts_nothing() -> None:
    long_url = "https://www.dg.gov.cn/ssh/zwgk/zfxxgkml/" + "a" * 80 + ".html"  # 125 bytes
    summary = "公示本年度临时救助资金发放情况。" * 7  # 112 characters
    text = compose_status("临时救助公示", summary, long_url)
    # Counted whole, the link alone would take 63 of the 140: the summary would be cut.
    assert text == f"【临时救助公示】{summary} {long_url}"
    assert units(text) == 8 + 112 + 11 == 131


def test_a_hash_in_the_title_or_summary_makes_no_topic() -> None:
    text = compose_status("第#3号#楼停水", "详见#公告#", URL + "#part")
    assert text == f"【第＃3号＃楼停水】详见＃公告＃ {URL}#part"


def test_weibos_own_short_title_wins_over_the_shared_one() -> None:
    shared = sample_publication(short_title="临时救助资金公示")
    own = sample_publication(
        short_title="临时救助资金公示",
        short_titles={"weibo": "临时救助公示名单", "wechat": "微信的标题"},
    )
    assert status_for(shared).startswith("【临时救助资金公示】")
    assert status_for(own).startswith("【临时救助公示名单】")
