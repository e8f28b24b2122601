"""WeChat's own quirks, against the WeChat sandbox over real HTTP (docs/protocols.md).

The shared contract suite covers create/lookup/delete/busy/timeout/garbage; this file covers
what only WeChat does: token refresh, −1 storms, the daily API quota, uncertain submits,
preflight limits, retraction of the public page, edit policies, the publish callback.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image

from channels import wechat_render as render
from channels.base import Publication, Receipt, Remote
from channels.errors import (
    ChannelDisabled,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    QuotaExhausted,
    Retryable,
)
from channels.fetch import FetchPolicy
from channels.wechat import BEIJING, WeChatChannel, finished_key
from publisher.api.wechat_callback import CallbackKeys, wechat_callback_router, wechat_signature
from publisher.channel_config import build_channel
from publisher.config import Settings
from tests.channels.conftest import FirstUse
from tests.contract.harness_wechat import make
from tests.contract.harnesses import ContractHarness
from tests.support import sample_publication, scratch_shared_store, serve_in_thread


@pytest.fixture
def harness() -> Iterator[ContractHarness]:
    with make() as made:
        yield made


def settled(
    channel: WeChatChannel,
    pub: Publication,
    receipt: Receipt | None,
    earlier: Mapping[str, Any] | None = None,
) -> Receipt:
    """Poll like the engine until the publish job is done (bounded); the state is merged into
    `earlier` (what the engine had recorded) as the engine does."""
    assert receipt is not None
    state = {**(earlier or {}), **receipt.state}
    deadline = time.monotonic() + 10
    while not receipt.complete:
        assert time.monotonic() < deadline, "publish never completed"
        time.sleep(0.2)
        found = channel.lookup(pub, Remote(receipt.remote_id, receipt.url, state))
        assert found is not None
        receipt, state = found, {**state, **found.state}
    return replace(receipt, state=state)


def counters(h: ContractHarness) -> dict[str, int]:
    result: dict[str, int] = h.sandbox.inspect()["counters"]
    return result


def news(article: Mapping[str, Any]) -> dict[str, Any]:
    """The first (only) news item of a published article."""
    first: dict[str, Any] = article["news_item"][0]
    return first


def articles(h: ContractHarness) -> dict[str, dict[str, object]]:
    result: dict[str, dict[str, object]] = h.sandbox.inspect()["records"]["articles"]
    return result


def test_a_40_character_title_is_refused_by_preflight_naming_the_title(
    harness: ContractHarness,
) -> None:
    pub = sample_publication(title="标" * 40)

    problems = harness.channel.preflight(pub)

    assert [(p.channel, p.field, p.rule) for p in problems] == [("wechat", "title", "max_32_chars")]
    with pytest.raises(Permanent) as refused:
        harness.channel.create(pub)
    assert refused.value.code == "45003"
    assert counters(harness).get("calls", 0) == 0, "nothing is sent for a refused publication"


def test_a_short_title_makes_a_long_title_acceptable(harness: ContractHarness) -> None:
    pub = sample_publication(title="标" * 40, short_title="临时救助资金发放情况公示")

    assert harness.channel.preflight(pub) == []
    receipt = settled(harness.channel, pub, harness.channel.create(pub))  # type: ignore[arg-type]

    assert receipt.url and "/s/" in receipt.url
    assert requests.get(receipt.url, timeout=5).text.count("临时救助资金发放情况公示") >= 1


def test_an_expired_token_mid_run_is_refreshed_once_without_force(
    harness: ContractHarness,
) -> None:
    channel = harness.channel
    channel.create(sample_publication(external_id="item-1", title="第一条"))
    requests.post(f"{harness.sandbox.url}/_sandbox/wechat/expire_token", timeout=5)

    channel.create(sample_publication(external_id="item-2", title="第二条"))
    channel.create(sample_publication(external_id="item-3", title="第三条"))

    seen = counters(harness)
    assert seen["tokens_issued"] == 2
    assert seen.get("force_refreshes", 0) == 0, "an expired token needs no forced refresh"
    assert seen["publishes_submitted"] == 3
    assert seen.get("token_calls", 0) == 0, "a plain token call would invalidate other workers"


def test_a_storm_of_busy_answers_is_ridden_out_by_retrying(harness: ContractHarness) -> None:
    pub = sample_publication()
    harness.sandbox.faults(fail_next=5)
    retries = 0

    while True:  # the engine's retry loop, without the backoff
        try:
            receipt = harness.channel.create(pub)
            break
        except Retryable:
            retries += 1
            assert retries <= 5, "more Retryable than injected busy answers"

    assert retries == 5
    settled(harness.channel, pub, receipt)  # type: ignore[arg-type]
    assert harness.copies(pub) == 1


def test_the_daily_api_quota_defers_until_midnight_in_beijing(harness: ContractHarness) -> None:
    requests.post(
        f"{harness.sandbox.url}/_sandbox/wechat", json={"api_quota_exhausted": True}, timeout=5
    )

    with pytest.raises(QuotaExhausted) as spent:
        harness.channel.create(sample_publication())

    assert spent.value.code == "45009"
    local = spent.value.until.astimezone(BEIJING)
    assert (local.hour, local.minute) == (0, 0)
    assert timedelta(0) < spent.value.until - datetime.now(UTC) <= timedelta(days=1)


def test_a_timeout_after_submit_is_unknown_and_lookup_adopts_the_one_article(
    harness: ContractHarness,
) -> None:
    pub = sample_publication()
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)

    with pytest.raises(OutcomeUnknown):
        harness.channel.create(pub)
    time.sleep(1.5)  # the sandbox finishes the publish job meanwhile
    adopted = harness.channel.lookup(pub, None)

    assert adopted is not None and adopted.complete
    assert adopted.remote_id in articles(harness)
    assert len(articles(harness)) == 1
    assert counters(harness)["publishes_submitted"] == 1


def test_a_lost_submit_answer_waits_for_a_slow_publish_instead_of_publishing_again(
    harness: ContractHarness,
) -> None:
    requests.post(
        f"{harness.sandbox.url}/_sandbox/wechat", json={"publish_delay_seconds": 3}, timeout=5
    )
    pub = sample_publication()
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        harness.channel.create(pub)

    waiting = harness.channel.lookup(pub, None)  # WeChat has not listed the article yet
    assert waiting is not None and not waiting.complete
    time.sleep(2)
    adopted = harness.channel.lookup(pub, Remote("", None, waiting.state))

    assert adopted is not None and adopted.complete
    assert len(articles(harness)) == 1
    assert counters(harness)["publishes_submitted"] == 1


def test_retract_removes_the_public_page(harness: ContractHarness) -> None:
    pub = sample_publication()
    receipt = settled(harness.channel, pub, harness.channel.create(pub))  # type: ignore[arg-type]
    assert receipt.url is not None
    assert requests.get(receipt.url, timeout=5).status_code == 200

    harness.channel.delete(Remote(receipt.remote_id, receipt.url, receipt.state))

    assert requests.get(receipt.url, timeout=5).status_code == 404
    assert harness.copies(pub) == 0


def test_a_publish_wechat_rejects_is_permanent_with_its_status(harness: ContractHarness) -> None:
    pub = sample_publication(body_html="<p>含违禁内容</p>")
    receipt = harness.channel.create(pub)

    time.sleep(0.5)
    with pytest.raises(Permanent) as failed:
        harness.channel.lookup(pub, Remote(receipt.remote_id, None, receipt.state))

    assert failed.value.code == "publish_status=4"


def test_the_correction_policy_keeps_the_article_and_publishes_a_notice() -> None:
    with make(edit_policy="correction") as h:
        pub = sample_publication()
        first = settled(h.channel, pub, h.channel.create(pub))  # type: ignore[arg-type]
        revised = replace(pub, revision_number=2, content_hash="b" * 64)

        receipt = settled(
            h.channel,  # type: ignore[arg-type]
            revised,
            h.channel.update(revised, Remote(first.remote_id, first.url, first.state)),
            earlier=first.state,
        )

        assert receipt.remote_id == first.remote_id and receipt.url == first.url
        assert receipt.content_hash == revised.content_hash
        titles = sorted(news(a)["title"] for a in articles(h).values())
        assert titles == sorted([pub.title, "更正：" + pub.title])
        [notice] = [i for i, a in articles(h).items() if news(a)["title"].startswith("更正")]
        assert receipt.state["correction_article_ids"] == [notice]
        again = h.channel.lookup(revised, Remote(receipt.remote_id, receipt.url, receipt.state))
        assert again is not None and again.content_hash == revised.content_hash


def test_retracting_a_corrected_article_deletes_its_correction_notices() -> None:
    with make(edit_policy="correction") as h:
        pub = sample_publication()
        first = settled(h.channel, pub, h.channel.create(pub))  # type: ignore[arg-type]
        state = dict(first.state)
        for n in (2, 3):
            revised = replace(pub, revision_number=n, content_hash=str(n) * 64)
            corrected = settled(
                h.channel,  # type: ignore[arg-type]
                revised,
                h.channel.update(revised, Remote(first.remote_id, first.url, state)),
                earlier=state,
            )
            state = dict(corrected.state)
        assert h.copies(pub) == 3  # the article and two notices, all linking to the page

        h.channel.delete(Remote(first.remote_id, first.url, state))

        assert h.copies(pub) == 0
        assert h.channel.lookup(revised, Remote(first.remote_id, first.url, state)) is None


def test_a_lost_correction_submit_is_found_instead_of_posted_again() -> None:
    with make(edit_policy="correction") as h:
        pub = sample_publication()
        first = settled(h.channel, pub, h.channel.create(pub))  # type: ignore[arg-type]
        revised = replace(pub, revision_number=2, content_hash="b" * 64)
        recorded = Remote(first.remote_id, first.url, first.state)
        h.sandbox.faults(timeout_next_writes=1, hang_seconds=2)
        with pytest.raises(OutcomeUnknown):
            h.channel.update(revised, recorded)

        # The engine looks up with what it recorded before the lost answer: the article.
        found = settled(
            h.channel, revised, h.channel.lookup(revised, recorded), earlier=first.state
        )  # type: ignore[arg-type]

        assert found.remote_id == first.remote_id
        assert found.content_hash == revised.content_hash, "else the engine corrects again"
        assert counters(h)["publishes_submitted"] == 2
        h.channel.delete(Remote(found.remote_id, found.url, found.state))
        assert h.copies(pub) == 0


def test_a_republish_whose_submit_answer_is_lost_adopts_the_new_article(
    harness: ContractHarness,
) -> None:
    pub = sample_publication()
    first = settled(harness.channel, pub, harness.channel.create(pub))  # type: ignore[arg-type]
    recorded = Remote(first.remote_id, first.url, first.state)
    # Only the body changes: the old and the new article have the same title and link.
    revised = replace(
        pub, revision_number=2, body_html="<p>更正后的名单。</p>", content_hash="b" * 64
    )
    requests.post(
        f"{harness.sandbox.url}/_sandbox/wechat", json={"publish_delay_seconds": 1.5}, timeout=5
    )
    # `update` under the republish policy: the old article is deleted, then the new one is
    # submitted, and that submit's answer is lost.
    harness.channel.delete(recorded)
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        harness.channel.create(revised)

    # The engine looks up with the remote state it recorded: the old, deleted article.
    found = harness.channel.lookup(revised, recorded)
    assert found is not None, "None here makes the engine publish the revision a second time"
    adopted = settled(harness.channel, revised, found, earlier=first.state)  # type: ignore[arg-type]

    assert adopted.remote_id not in (first.remote_id, "")
    assert adopted.content_hash == revised.content_hash
    assert harness.copies(pub) == 1
    assert counters(harness)["publishes_submitted"] == 2


def test_the_submit_marker_of_one_revision_does_not_hold_another(
    harness: ContractHarness,
) -> None:
    pub = sample_publication()
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        harness.channel.create(pub)
    time.sleep(1)
    adopted = harness.channel.lookup(pub, None)
    assert adopted is not None and adopted.complete  # revision 1's marker is left behind
    harness.channel.delete(Remote(adopted.remote_id, adopted.url, adopted.state))
    revised = replace(pub, revision_number=2, content_hash="b" * 64)

    # Revision 2 was never submitted (its worker died before): nothing to wait for.
    assert harness.channel.lookup(revised, None) is None
    waiting = harness.channel.lookup(pub, None)
    assert waiting is not None and not waiting.complete, "revision 1's own marker still holds"


def test_lookup_never_adopts_another_items_article_with_the_same_title(
    harness: ContractHarness,
) -> None:
    water = sample_publication(title="停水通知", summary="松山湖片区停水。")
    elsewhere = replace(
        water,
        item_id=43,
        external_id="item-43",
        website_url="http://127.0.0.1:8101/articles/item-43.html",
    )
    published = settled(harness.channel, water, harness.channel.create(water))  # type: ignore[arg-type]

    assert harness.channel.lookup(elsewhere, None) is None

    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        harness.channel.create(elsewhere)
    time.sleep(1)
    found = harness.channel.lookup(elsewhere, None)
    assert found is not None and found.remote_id != published.remote_id
    assert news(articles(harness)[found.remote_id])["content_source_url"] == elsewhere.website_url


def test_an_article_found_by_its_link_under_another_title_gets_no_content_hash(
    harness: ContractHarness,
) -> None:
    pub = sample_publication()
    published = settled(harness.channel, pub, harness.channel.create(pub))  # type: ignore[arg-type]
    retitled = replace(pub, revision_number=2, title="新的标题", content_hash="c" * 64)

    found = harness.channel.lookup(retitled, None)

    assert found is not None and found.remote_id == published.remote_id
    assert found.content_hash is None, "the article does not show this revision's title"


def test_preview_shows_the_article_wechat_would_get_without_calling_it(
    harness: ContractHarness,
) -> None:
    pub = sample_publication(
        title="标" * 40,
        short_title="临时救助资金发放情况公示",
        body_html='<p onclick="x()">名单</p><script>alert(1)</script>',
    )

    shown = harness.channel.preview(pub)

    assert shown["title"] == "临时救助资金发放情况公示"
    assert shown["author"] == pub.department_name
    assert shown["digest"] == pub.summary
    assert shown["content_html"] == "<p>名单</p>"
    assert shown["content_source_url"] == pub.website_url
    assert shown["limits"]["title_chars"] == {"used": 12, "max": 32}
    assert shown["limits"]["content_bytes"] == {
        "used": len("<p>名单</p>".encode()),
        "under": 1_000_000,
    }
    assert counters(harness).get("calls", 0) == 0


def test_inline_images_move_to_wechats_cdn() -> None:
    image = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(image, "PNG")
    app = FastAPI()

    @app.get("/pic.png")
    def pic() -> object:
        from fastapi.responses import Response

        return Response(image.getvalue(), media_type="image/png")

    with (
        serve_in_thread(app) as host,
        make(fetch=FetchPolicy(allowed_origins=(host,))) as harness,
    ):
        pub = sample_publication(
            body_html=f'<p>图：</p><img src="{host}/pic.png"><script>x</script>'
        )
        receipt = settled(harness.channel, pub, harness.channel.create(pub))  # type: ignore[arg-type]
        drafts = harness.sandbox.inspect()["records"]["drafts"]

    content = next(iter(drafts.values()))["articles"][0]["content"]
    assert host not in content and "/mmbiz/" in content and "<script" not in content
    assert receipt.complete


def test_covers_are_jpegs_under_64kb() -> None:
    noisy = Image.effect_noise((3000, 2000), 120).convert("RGB")
    raw = io.BytesIO()
    noisy.save(raw, "PNG")

    cover = render.cover_jpeg(raw.getvalue())
    card = render.default_cover("welfare", "社会救助和社会福利")

    for jpeg in (cover, card):
        assert jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) < render.THUMB_MAX_BYTES
    assert Image.open(io.BytesIO(cover)).size[0] <= render.COVER_SIZE[0]


@pytest.mark.parametrize(
    "body",
    [
        '{"errcode": 40007, "errmsg": "invalid media_id hint: [tok-quoted-123]"}',
        "<html>bad gateway: /cgi-bin/draft/add?access_token=tok-quoted-123</html>",
    ],
)
def test_a_token_the_answer_quotes_is_not_in_our_error(body: str) -> None:
    """A real server answering as WeChat (or a proxy before it) might, quoting the token."""
    app = FastAPI()

    @app.post("/cgi-bin/stable_token")
    def stable_token() -> dict[str, Any]:
        return {"access_token": "tok-quoted-123", "expires_in": 7200}

    @app.post("/cgi-bin/{call:path}")
    def refuse(call: str) -> Response:
        return Response(body, media_type="application/json")

    with scratch_shared_store() as shared, serve_in_thread(app) as api_base:
        channel = WeChatChannel(
            appid="wx1", secret="s", api_base=api_base, shared=shared, timeout=5.0
        )
        with pytest.raises(ChannelError) as caught:
            channel.create(sample_publication())

    assert "tok-quoted-123" not in f"{caught.value} {caught.value.message}"
    assert "***" in (caught.value.message or "")


def test_the_channel_is_disabled_without_credentials() -> None:
    from publisher.shared import RedisSharedStore
    from tests.support import REDIS_RUN_PREFIX, REDIS_URL, sealer_for_tests

    shared = RedisSharedStore(REDIS_URL, prefix=REDIS_RUN_PREFIX, sealer=sealer_for_tests())
    with pytest.raises(ChannelDisabled, match="PUBLISHER_WECHAT_SECRET"):
        build_channel("wechat", Settings(wechat_appid="x", wechat_secret=None), shared)


def test_the_callback_verifies_signatures_and_reports_finished_jobs(
    harness: ContractHarness, first_use: FirstUse
) -> None:
    finished: list[str] = []
    app = FastAPI()
    app.include_router(
        wechat_callback_router(
            CallbackKeys("cb-token"),
            first_use,
            lambda publish_id, _article: finished.append(publish_id),
        )
    )
    with serve_in_thread(app) as api:
        ts, nonce = str(int(time.time())), "n0nce"
        good = {
            "timestamp": ts,
            "nonce": nonce,
            "signature": wechat_signature("cb-token", ts, nonce),
        }
        echoed = requests.get(f"{api}/wechat/callback", params={**good, "echostr": "e1"}, timeout=5)
        again = requests.get(f"{api}/wechat/callback", params={**good, "echostr": "e2"}, timeout=5)
        forged = requests.get(
            f"{api}/wechat/callback",
            params={**good, "signature": hashlib.sha1(b"x").hexdigest(), "echostr": "e1"},
            timeout=5,
        )
        forged_post = requests.post(
            f"{api}/wechat/callback",
            params={**good, "signature": "0" * 40},
            data=b"<xml/>",
            timeout=5,
        )
        old = "1700000000"
        stale = requests.post(
            f"{api}/wechat/callback",
            params={
                "timestamp": old,
                "nonce": nonce,
                "signature": wechat_signature("cb-token", old, nonce),
            },
            data=b"<xml><Event>PUBLISHJOBFINISH</Event></xml>",
            timeout=5,
        )
        requests.post(
            f"{harness.sandbox.url}/_sandbox/wechat",
            json={"callback_url": f"{api}/wechat/callback", "callback_token": "cb-token"},
            timeout=5,
        )
        receipt = harness.channel.create(sample_publication())
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:
            time.sleep(0.05)

    assert (echoed.status_code, echoed.text) == (200, "e1")
    assert again.status_code == 403  # a signed query is good once
    assert forged.status_code == 403 and forged_post.status_code == 403
    assert stale.status_code == 403  # a signed but old URL cannot be replayed
    assert finished == [receipt.state["publish_id"]]


def test_a_job_the_callback_announced_is_confirmed_without_a_rationed_poll(
    harness: ContractHarness,
) -> None:
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    pub = sample_publication()
    receipt = channel.create(pub)
    time.sleep(0.5)  # the sandbox publishes; its article is the one the callback would name
    (article_id,) = articles(harness)
    channel.shared.set(finished_key(receipt.state["publish_id"]), article_id)
    polls = counters(harness).get("calls:/cgi-bin/freepublish/get", 0)

    done = channel.lookup(pub, Remote(receipt.remote_id, None, receipt.state))

    assert done is not None and done.complete and done.remote_id == article_id
    assert done.url and done.state["publish_id"] == receipt.state["publish_id"]
    assert counters(harness).get("calls:/cgi-bin/freepublish/get", 0) == polls
