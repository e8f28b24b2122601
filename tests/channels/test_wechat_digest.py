"""The WeChat article's title and digest against the WeChat sandbox over real HTTP: the digest
sent is the editor's own, else the summary (or the body's text) cut at the last sentence end
within 128 characters; the title is WeChat's own short title over the shared one. The
sandbox checks the draft as WeChat does (45004 over 128): it is never loosened here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from channels import wechat_render as render
from channels.errors import Permanent
from tests.channels.test_wechat import articles, counters, settled
from tests.contract.harness_wechat import make
from tests.contract.harnesses import ContractHarness
from tests.support import LONG_SUMMARY, sample_publication


@pytest.fixture
def harness() -> Iterator[ContractHarness]:
    with make() as made:
        yield made


def published(harness: ContractHarness, **overrides: Any) -> dict[str, Any]:
    """Publish a sample publication with `overrides`; the article the sandbox holds."""
    pub = sample_publication(**overrides)
    settled(harness.channel, pub, harness.channel.create(pub))  # type: ignore[arg-type]
    (article,) = articles(harness).values()
    news: list[dict[str, Any]] = article["news_item"]  # type: ignore[assignment]
    return news[0]


def test_the_digest_sent_is_the_editors_own(harness: ContractHarness) -> None:
    sent = published(harness, summary=LONG_SUMMARY, wechat_digest="补贴每月发放，请按时申领。")
    assert sent["digest"] == "补贴每月发放，请按时申领。"


def test_a_summary_too_long_for_wechat_is_cut_at_a_sentence_end_not_refused(
    harness: ContractHarness,
) -> None:
    pub = sample_publication(summary=LONG_SUMMARY)
    assert len(LONG_SUMMARY) > render.DIGEST_MAX
    assert harness.channel.preflight(pub) == []

    sent = published(harness, summary=LONG_SUMMARY)

    assert sent["digest"] == LONG_SUMMARY[:66]
    assert sent["digest"].endswith("提出申请。")
    assert sent["digest"] == harness.channel.preview(pub)["digest"], "the preview shows it"


def test_with_no_summary_the_digest_is_the_bodys_text_cut(harness: ContractHarness) -> None:
    body = "<p>根据《广东省临时救助办法》，现将有关情况公示如下。</p>" + (
        "<p>" + "公示对象共计一百二十户，" * 12 + "名单附后。</p>"
    )
    sent = published(harness, summary="", body_html=body)
    assert sent["digest"] == "根据《广东省临时救助办法》，现将有关情况公示如下。"


def test_a_summary_without_a_sentence_end_is_cut_with_an_ellipsis(
    harness: ContractHarness,
) -> None:
    summary = "公示对象共计一百二十户" * 15
    sent = published(harness, summary=summary)
    assert sent["digest"] == summary[:127] + "…"
    assert len(sent["digest"]) == render.DIGEST_MAX


def test_the_editors_digest_over_128_is_refused_by_preflight_naming_it(
    harness: ContractHarness,
) -> None:
    pub = sample_publication(wechat_digest="摘" * 129)

    problems = harness.channel.preflight(pub)

    assert [(p.field, p.rule) for p in problems] == [("wechat_digest", "max_128_chars")]
    with pytest.raises(Permanent) as refused:
        harness.channel.create(pub)
    assert refused.value.code == "45004"
    assert counters(harness).get("calls", 0) == 0, "nothing is sent for a refused publication"


def test_wechats_own_short_title_wins_over_the_shared_one(harness: ContractHarness) -> None:
    sent = published(
        harness,
        title="标" * 40,
        short_title="共用的短标题",
        short_titles={"wechat": "微信自己的短标题", "weibo": "微博的"},
    )
    assert sent["title"] == "微信自己的短标题"


def test_an_ascii_mark_ends_a_sentence_only_before_a_space() -> None:
    """ "?" and "!" inside a link end nothing; followed by a space, or full-width, they do."""
    text = "Apply at https://www.example.gov.cn/apply?year=2026&type=heat now! " + "x" * 120
    assert render.sentence_cut(text, 128) == text[: text.index("now!") + 4]
    assert render.sentence_cut("问题一？问题二；" + "长" * 130, 128) == "问题一？问题二；"
