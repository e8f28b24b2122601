"""The Weibo adapter against the Weibo sandbox over real HTTP (docs/protocols.md)."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image
from sqlalchemy import delete

from channels.base import Publication, Remote
from channels.budgets import next_beijing_midnight
from channels.errors import (
    AuthExpired,
    ChannelDisabled,
    OutcomeUnknown,
    Permanent,
    QuotaExhausted,
    RateLimited,
    Retryable,
)
from channels.weibo import TOKEN_KEY, WeiboChannel
from channels.weibo_codes import error_for
from channels.weibo_lookup import created_at, idstr
from channels.weibo_text import units
from publisher.channel_config import build_channel, weibo_settings
from publisher.config import Settings
from publisher.db import Database
from publisher.models import SharedValue
from publisher.shared import DatabaseSharedStore
from tests.support import (
    RunningSandbox,
    free_port,
    running_sandbox,
    sample_publication,
    sealer_for_tests,
    serve_in_thread,
)


def image_bytes(kind: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, kind)
    return buffer.getvalue()


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox("weibo") as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DatabaseSharedStore]:
    database = Database(f"sqlite:///{tmp_path / 'shared.sqlite'}")
    SharedValue.__table__.create(database.engine)  # type: ignore[attr-defined]
    yield DatabaseSharedStore(database, sealer=sealer_for_tests())
    database.dispose()


def make_channel(
    sandbox: RunningSandbox, store: DatabaseSharedStore, **overrides: Any
) -> WeiboChannel:
    settings = Settings(
        weibo_api_base=sandbox.url,
        weibo_access_token="sandbox",
        http_timeout_seconds=1.0,
        **overrides,
    )
    return WeiboChannel.from_settings(weibo_settings(settings), store)


def configure(sandbox: RunningSandbox, **config: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/weibo/config", json=config, timeout=5).raise_for_status()


def statuses(sandbox: RunningSandbox) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.inspect()["records"].get("statuses", {})
    return found


def live(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return [s for s in statuses(sandbox).values() if not s["deleted"]]


def share_by_hand(sandbox: RunningSandbox, text: str) -> str:
    answer = requests.post(
        f"{sandbox.url}/2/statuses/share.json",
        data={"access_token": "sandbox", "rip": "127.0.0.1", "status": text},
        timeout=5,
    )
    answer.raise_for_status()
    return str(answer.json()["idstr"])


def timeline(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{sandbox.url}/2/statuses/user_timeline.json",
        params={"access_token": "sandbox", "count": 100},
        timeout=5,
    )
    answer.raise_for_status()
    shown: list[dict[str, Any]] = answer.json()["statuses"]
    return shown


def numbered(n: int) -> Publication:
    return sample_publication(
        item_id=1000 + n,
        external_id=f"item-{1000 + n}",
        title=f"第{n}号通知：临时救助资金发放情况",
        website_url=f"http://127.0.0.1:8101/articles/item-{1000 + n}.html",
    )


def test_create_posts_the_composed_status_and_links_to_it(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    receipt = channel.create(pub)
    [posted] = live(sandbox)
    assert receipt.remote_id == posted["idstr"]
    assert receipt.state["id"] == posted["idstr"]
    assert receipt.content_hash == pub.content_hash
    assert posted["text"] == f"【{pub.title}】{pub.summary} {pub.website_url}"
    assert posted["rip"] == "127.0.0.1"
    assert receipt.url == f"{sandbox.url}/{posted['uid']}/{posted['idstr']}"
    page = requests.get(receipt.url, timeout=5)
    assert page.status_code == 200 and pub.title in page.text


def test_status_of_exactly_140_units_is_accepted_and_141_refused(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    pub = sample_publication(title="临时救助公示", summary="")
    head = f"【临时救助公示】 {pub.website_url}"
    pub = replace(pub, summary="公" * (140 - units(head)) + ("a" if len(head) % 2 else ""))
    receipt = make_channel(sandbox, store).create(pub)
    text = statuses(sandbox)[receipt.remote_id]["text"]
    assert units(text) == 140
    assert pub.summary in text
    answer = requests.post(
        f"{sandbox.url}/2/statuses/share.json",
        data={"access_token": "sandbox", "rip": "127.0.0.1", "status": text + "公"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["error_code"] == 20012


def test_pacing_posts_30_per_window_and_defers_the_rest_until_the_window_ends(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    window = 3.0
    # Weibo's own limit is set above ours: every deferral here must come from our pacing.
    configure(sandbox, rate_limit=100, rate_window_seconds=window)
    channel = make_channel(sandbox, store, weibo_rate_window_seconds=window)
    # Start at the beginning of a fixed window so that all 35 attempts fall inside it.
    time.sleep(window - time.time() % window + 0.05)
    window_end = (math.floor(time.time() / window) + 1) * window
    posted, deferred = [], []
    for n in range(35):
        try:
            posted.append(channel.create(numbered(n)))
        except RateLimited as exc:
            assert exc.code is None, "deferred before sending, not by Weibo's 10023"
            deferred.append((n, exc.until))
    assert len(posted) == 30
    assert [n for n, _ in deferred] == list(range(30, 35))
    for _, until in deferred:
        assert abs(until.timestamp() - window_end) < 0.5
    time.sleep(max(0.0, deferred[-1][1].timestamp() - time.time()) + 0.05)
    for n, _ in deferred:
        posted.append(channel.create(numbered(n)))
    texts = [s["text"] for s in live(sandbox)]
    assert len(texts) == 35 == len(set(texts))
    assert sandbox.inspect()["counters"]["statuses_created"] == 35
    assert len({r.remote_id for r in posted}) == 35


def test_timeout_after_write_is_unknown_and_lookup_finds_the_one_post(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.create(pub)
    found = channel.lookup(pub, None)
    assert found is not None
    [posted] = live(sandbox)
    assert found.remote_id == posted["idstr"]
    assert found.content_hash == pub.content_hash
    assert channel.lookup(numbered(1), None) is None
    assert len(statuses(sandbox)) == 1


def test_repeat_content_adopts_the_existing_post(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    first = channel.create(pub)
    second = channel.create(pub)
    assert second.remote_id == first.remote_id
    assert second.url == first.url
    assert len(statuses(sandbox)) == 1


def test_expired_token_needs_an_operator_and_a_new_shared_token_works_at_once(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    requests.post(f"{sandbox.url}/_sandbox/weibo/expire-token", timeout=5).raise_for_status()
    with pytest.raises(AuthExpired) as caught:
        channel.create(sample_publication())
    assert caught.value.refreshable is False
    assert (caught.value.code, caught.value.message) == ("21327", "expired_token")
    requests.post(
        f"{sandbox.url}/_sandbox/weibo/token", json={"token": "renewed-token"}, timeout=5
    ).raise_for_status()
    store.set(TOKEN_KEY, "renewed-token")
    receipt = channel.create(sample_publication())
    assert [s["idstr"] for s in live(sandbox)] == [receipt.remote_id]


def test_retract_deletes_the_post_and_a_second_retract_is_fine(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    receipt = channel.create(sample_publication())
    remote = Remote(receipt.remote_id, receipt.url, receipt.state)
    channel.delete(remote)
    assert statuses(sandbox)[receipt.remote_id]["deleted"] is True
    channel.delete(remote)  # Weibo answers 20101: already gone counts as done
    assert channel.lookup(sample_publication(), remote) is None
    assert receipt.url is not None
    assert requests.get(receipt.url, timeout=5).status_code == 404


def test_update_reposts_by_default(sandbox: RunningSandbox, store: DatabaseSharedStore) -> None:
    channel = make_channel(sandbox, store)
    first = channel.create(sample_publication())
    edited = sample_publication(summary="更正后的摘要：发放对象名单已更新。", revision_id=8)
    remote = Remote(first.remote_id, first.url, first.state)
    second = channel.update(edited, remote)
    assert second.remote_id != first.remote_id
    assert statuses(sandbox)[first.remote_id]["deleted"] is True
    [now] = live(sandbox)
    assert now["idstr"] == second.remote_id and "更正后的摘要" in now["text"]
    # The same text again needs nothing on Weibo.
    again = channel.update(edited, Remote(second.remote_id, second.url, second.state))
    assert again.remote_id == second.remote_id
    assert len(statuses(sandbox)) == 2


def test_update_by_correction_keeps_the_old_post_and_retract_removes_both(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_edit_policy="correction")
    first = channel.create(sample_publication())
    edited = sample_publication(summary="发放对象名单已更新。")
    second = channel.update(edited, Remote(first.remote_id, first.url, first.state))
    texts = {s["idstr"]: s["text"] for s in live(sandbox)}
    assert set(texts) == {first.remote_id, second.remote_id}
    assert texts[second.remote_id].startswith("【更正】")
    channel.delete(Remote(second.remote_id, second.url, second.state))
    assert live(sandbox) == []


def test_busy_is_retryable_and_garbage_after_a_write_is_unknown(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    sandbox.faults(fail_next=1)
    with pytest.raises(Retryable) as caught:
        channel.create(sample_publication())
    assert (caught.value.code, caught.value.message) == ("10001", "system error")
    sandbox.faults(garbage_next=1)
    with pytest.raises(OutcomeUnknown):
        channel.create(sample_publication())


def test_weibo_refusals_are_permanent_with_weibo_text_kept(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    outside = sample_publication(website_url="http://www.example.org/articles/item-42.html")
    with pytest.raises(Permanent) as caught:
        channel.create(outside)
    assert caught.value.code == "10017"
    # 10017 is any invalid parameter: Weibo's own text says which, ours does not guess.
    assert caught.value.message is not None and "safe domain" in caught.value.message
    assert "参数值不合法" in caught.value.explanation
    assert "safe domain" in str(caught.value)
    assert live(sandbox) == []


def test_our_safe_domains_refuse_before_sending(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_safe_domains=("www.dg.gov.cn",))
    [problem] = channel.preflight(sample_publication())
    assert problem.rule == "safe_domain"
    with pytest.raises(Permanent):
        channel.create(sample_publication())
    assert sandbox.inspect()["counters"].get("calls", 0) == 0


def test_weibo_rate_limit_defers_until_its_reset(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    configure(sandbox, rate_limit=1, rate_window_seconds=3600)
    channel = make_channel(sandbox, store)
    channel.create(numbered(1))
    with pytest.raises(RateLimited) as caught:
        channel.create(numbered(2))
    assert caught.value.code == "10023"
    end = (math.floor(time.time() / 3600) + 1) * 3600
    assert abs(caught.value.until.timestamp() - end) < 2
    assert caught.value.until > datetime.now(UTC)


def test_cover_image_is_uploaded_as_multipart(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    images = FastAPI()

    @images.get("/cover.png")
    def cover() -> Response:
        return Response(PNG, media_type="image/png")

    with serve_in_thread(images) as image_base:
        channel = make_channel(sandbox, store, fetch_allowed_origins=(image_base,))
        receipt = channel.create(sample_publication(cover_image_url=f"{image_base}/cover.png"))
    assert statuses(sandbox)[receipt.remote_id]["pic_bytes"] == len(PNG)


def test_token_never_appears_in_errors(store: DatabaseSharedStore) -> None:
    settings = Settings(weibo_api_base=f"http://127.0.0.1:{free_port()}", http_timeout_seconds=1.0)
    store.set(TOKEN_KEY, "very-secret-token")
    channel = WeiboChannel.from_settings(weibo_settings(settings), store)
    with pytest.raises(Retryable) as caught:
        channel.lookup(sample_publication(), Remote("5000000000000001"))
    assert "very-secret-token" not in f"{caught.value} {caught.value.message}"


def test_a_token_weibo_repeats_in_its_error_is_not_in_ours(store: DatabaseSharedStore) -> None:
    """A real server answering as Weibo does to a bad token, quoting it (as a proxy's or a
    gateway's error page may): the error the operator sees does not."""
    app = FastAPI()

    @app.get("/2/statuses/show.json")
    def refuse(access_token: str) -> Response:
        body = f'{{"error": "invalid_access_token {access_token}", "error_code": 21332}}'
        return Response(body, status_code=401, media_type="application/json")

    store.set(TOKEN_KEY, "very-secret-token")
    with serve_in_thread(app) as weibo_base:
        channel = WeiboChannel.from_settings(
            weibo_settings(Settings(weibo_api_base=weibo_base)), store
        )
        with pytest.raises(AuthExpired) as caught:
            channel.lookup(sample_publication(), Remote("5000000000000001"))

    assert caught.value.code == "21332" and "invalid_access_token ***" in str(caught.value)
    assert "very-secret-token" not in f"{caught.value} {caught.value.message}"


def test_a_token_gone_at_call_time_waits_for_an_operator_and_a_new_one_works_at_once(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    store.set(TOKEN_KEY, "sandbox")
    settings = Settings(weibo_api_base=sandbox.url, http_timeout_seconds=1.0)
    # The engine's pool keeps this one.
    channel = WeiboChannel.from_settings(weibo_settings(settings), store)
    store.delete(TOKEN_KEY)

    with pytest.raises(AuthExpired) as caught:
        channel.create(sample_publication())

    assert caught.value.refreshable is False
    assert "publisher channels set-token weibo" in caught.value.explanation
    assert sandbox.inspect()["counters"].get("calls", 0) == 0
    store.set(TOKEN_KEY, "sandbox")
    receipt = channel.create(sample_publication())
    assert [s["idstr"] for s in live(sandbox)] == [receipt.remote_id]


def test_disabled_without_a_token_or_a_base_url(store: DatabaseSharedStore) -> None:
    with pytest.raises(ChannelDisabled, match="set-token weibo"):
        build_channel("weibo", Settings(weibo_access_token=None), store)
    with pytest.raises(ChannelDisabled, match="PUBLISHER_WEIBO_API_BASE"):
        build_channel("weibo", Settings(weibo_api_base="", weibo_access_token="t"), store)


def test_lookup_never_adopts_another_items_post_with_the_same_text(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    water = sample_publication(title="停水通知", summary="松山湖片区明日停水。")
    elsewhere = replace(
        water,
        item_id=43,
        external_id="item-43",
        website_url="http://127.0.0.1:8101/articles/item-43.html",
    )
    posted = channel.create(water)

    assert channel.lookup(elsewhere, None) is None

    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.create(elsewhere)
    found = channel.lookup(elsewhere, None)
    assert found is not None and found.remote_id != posted.remote_id
    assert found.content_hash == elsewhere.content_hash
    assert elsewhere.website_url in statuses(sandbox)[found.remote_id]["text"]


def test_a_post_linking_to_the_item_with_other_text_gets_no_content_hash(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    posted = channel.create(pub)
    revised = replace(pub, summary="更正后的摘要。", content_hash="b" * 64)

    found = channel.lookup(revised, Remote(posted.remote_id, posted.url, posted.state))

    assert found is not None and found.remote_id == posted.remote_id
    assert found.content_hash is None


def test_a_short_link_of_a_known_shortener_is_followed_to_tell_whose_post_it_is(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    # The sandbox shows every link as its own short link (`/t/`), as Weibo shows t.cn links.
    pub = sample_publication(title="停水通知", summary="松山湖片区明日停水。")
    other = replace(pub, external_id="item-43", website_url=pub.website_url.replace("42", "43"))  # type: ignore[union-attr]
    channel = make_channel(sandbox, store)
    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.create(pub)
    # Another item's post with the same words, newer, by hand: only its link tells it apart.
    share_by_hand(sandbox, f"【{pub.title}】{pub.summary} {other.website_url}")

    found = channel.lookup(pub, None)

    assert found is not None and found.content_hash == pub.content_hash
    assert statuses(sandbox)[found.remote_id]["text"].endswith(pub.website_url or "-")
    assert all(s["text"].split()[-1].startswith(f"{sandbox.url}/t/") for s in timeline(sandbox))


def test_a_lost_post_showing_a_short_link_of_an_unknown_host_is_adopted_by_its_text(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    configure(sandbox, short_link_base="http://short.example/")  # a shortener we do not know
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.create(pub)
    [shown] = timeline(sandbox)
    assert pub.website_url not in shown["text"] and "http://short.example/" in shown["text"]

    found = channel.lookup(pub, None)

    assert found is not None and found.remote_id == shown["idstr"]
    assert found.content_hash == pub.content_hash
    assert len(statuses(sandbox)) == 1


def test_preview_shows_the_exact_status_and_its_units(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_edit_policy="correction")
    pub = sample_publication()

    shown = channel.preview(pub)

    assert shown["status"] == f"【{pub.title}】{pub.summary} {pub.website_url}"
    assert shown["units"] == units(shown["status"]) <= shown["limit_units"] == 140
    assert shown["correction_status"].startswith("【更正】")
    assert channel.preview(replace(pub, website_url=None))["status"] is None
    assert sandbox.inspect()["counters"].get("calls", 0) == 0


def test_a_lost_post_that_scrolled_off_is_found_by_its_id_or_left_unknown(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.create(pub)
    [lost_id] = statuses(sandbox)
    for n in range(6):  # the sandbox's timeline shows the newest five
        channel.create(numbered(n))

    with pytest.raises(OutcomeUnknown) as caught:
        channel.lookup(pub, None)
    assert "暂不重发" in caught.value.explanation
    found = channel.lookup(pub, Remote(lost_id))  # an operator gives the post's id

    assert found is not None and found.remote_id == lost_id
    assert found.content_hash == pub.content_hash
    assert len(statuses(sandbox)) == 7  # nothing posted again
    # Known now: a later lookup reads it by id, and a deleted post is then simply missing.
    channel.delete(Remote(lost_id))
    assert channel.lookup(pub, Remote(lost_id)) is None


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        (20016, RateLimited),  # Out of limit
        (20017, RateLimited),  # Repeat content (similar)
        (10022, RateLimited),  # IP requests out of rate limit
        (10023, RateLimited),
        (10024, RateLimited),
        (10014, AuthExpired),  # Insufficient app permissions
        (21321, AuthExpired),  # unaudited app over its user limit
        (21315, AuthExpired),  # Token expired
        (21332, AuthExpired),
        (20032, OutcomeUnknown),  # posted, server slow
        (10004, AuthExpired),  # IP limit: this server is not on the app's IP whitelist
        (10005, AuthExpired),  # Permission denied, need a high level appkey
        (10003, OutcomeUnknown),  # Remote service error, on a share: may have posted
        (10010, OutcomeUnknown),  # Job expired
        (10011, OutcomeUnknown),  # RPC error
        (20021, Permanent),
    ],
)
def test_weibo_codes_defer_wait_look_up_or_fail(
    store: DatabaseSharedStore, code: int, raised: type[Exception]
) -> None:
    app = FastAPI()

    @app.post("/2/statuses/share.json")
    def refuse() -> Response:
        body = f'{{"error": "weibo says {code}", "error_code": {code}, "request": "/2/x"}}'
        return Response(body, status_code=400, media_type="application/json")

    with serve_in_thread(app) as weibo_base:
        channel = WeiboChannel(weibo_base, store, access_token="t")
        with pytest.raises(raised) as caught:
            channel.create(sample_publication())

    assert type(caught.value) is raised
    assert caught.value.code == str(code) and caught.value.message == f"weibo says {code}"
    if isinstance(caught.value, RateLimited):
        assert caught.value.until > datetime.now(UTC)
    if isinstance(caught.value, AuthExpired):
        assert caught.value.refreshable is False
    # Only an answer saying nothing was posted drops the note that sends the lookup searching.
    assert bool(channel.finder.unanswered(sample_publication())) == (raised is OutcomeUnknown)


@pytest.mark.parametrize("code", [10004, 10005])
def test_an_ip_or_app_level_refusal_says_what_the_operator_must_do(code: int) -> None:
    explanation = error_for({"error_code": code, "error": "x"}, 403).explanation
    assert "请在微博开放平台" in explanation and "微博" in explanation


@pytest.mark.parametrize("code", [10003, 10010, 10011])
def test_a_back_end_failure_on_a_read_is_retried(store: DatabaseSharedStore, code: int) -> None:
    app = FastAPI()

    @app.get("/2/statuses/show.json")
    def fail() -> Response:
        body = f'{{"error": "weibo says {code}", "error_code": {code}}}'
        return Response(body, status_code=500, media_type="application/json")

    with serve_in_thread(app) as weibo_base:
        channel = WeiboChannel(weibo_base, store, access_token="t")
        with pytest.raises(Retryable) as caught:
            channel.lookup(sample_publication(), Remote("5000000000000001"))
    assert type(caught.value) is Retryable and caught.value.code == str(code)


def test_a_post_read_by_id_is_taken_only_if_it_is_the_items(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    water = sample_publication(title="停水通知", summary="松山湖片区明日停水。")
    same_words = replace(
        water, item_id=43, external_id="item-43", website_url=numbered(43).website_url
    )
    others = {pub.external_id: channel.create(pub).remote_id for pub in (numbered(1), same_words)}
    ours = channel.create(water)

    # Another item's post (its text; our words but its link) is never taken: the lookup
    # answers with our own post, found on the timeline by its link (adopt then refuses).
    for other in (others["item-1001"], others["item-43"]):
        found = channel.lookup(water, Remote(other))
        assert found is not None and found.remote_id == ours.remote_id
    found = channel.lookup(water, Remote(ours.remote_id))
    assert found is not None and found.remote_id == ours.remote_id
    # Linking to the item is enough (a revised text), and a claim by another item is not.
    linking = share_by_hand(sandbox, f"见公告 {water.website_url}")
    found = channel.lookup(replace(water, summary="已更正。"), Remote(linking))
    assert found is not None and found.remote_id == linking
    channel.finder.settled(same_words, linking)
    found = channel.lookup(water, Remote(linking))
    assert found is not None and found.remote_id == ours.remote_id


def test_a_lost_correction_is_searched_for_once_an_hour_its_id_given_is_read_at_once(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_edit_policy="correction")
    first = channel.create(sample_publication())
    recorded = Remote(first.remote_id, first.url, first.state)
    edited = sample_publication(summary="发放对象名单已更新。")
    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.update(edited, recorded)
    lost = max(statuses(sandbox), key=int)
    for n in range(6):  # the sandbox's timeline shows the newest five
        channel.create(numbered(n))
    with pytest.raises(OutcomeUnknown):
        channel.lookup(edited, recorded)  # the recorded post read, the timeline searched
    calls = sandbox.inspect()["counters"]["calls"]

    for _ in range(3):  # the engine's retries within the hour
        with pytest.raises(OutcomeUnknown) as caught:
            channel.lookup(edited, recorded)
        assert "每小时最多查找一次" in caught.value.explanation
    assert sandbox.inspect()["counters"]["calls"] == calls
    found = channel.lookup(edited, Remote(lost))  # the id an operator gives
    assert found is not None and found.remote_id == lost
    assert sandbox.inspect()["counters"]["calls"] == calls + 1


def test_an_edit_that_cannot_repost_today_keeps_the_old_post(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_daily_calls=2)
    first = channel.create(sample_publication())
    calls = sandbox.inspect()["counters"]["calls"]
    edited = sample_publication(summary="更正后的摘要：发放对象名单已更新。", revision_id=8)

    with pytest.raises(QuotaExhausted) as caught:  # destroy + share need 2; 1 is left
        channel.update(edited, Remote(first.remote_id, first.url, first.state))

    assert caught.value.until == next_beijing_midnight()
    assert "原微博保留" in caught.value.explanation
    assert sandbox.inspect()["counters"]["calls"] == calls
    assert [s["idstr"] for s in live(sandbox)] == [first.remote_id]


def test_a_hash_in_the_title_is_posted_without_making_a_topic(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    pub = sample_publication(title="第#3号#楼临时停水通知")
    receipt = make_channel(sandbox, store).create(pub)
    text = statuses(sandbox)[receipt.remote_id]["text"]
    assert text.startswith("【第＃3号＃楼临时停水通知】") and "#" not in text
    refused = requests.post(  # the sandbox, like Weibo, takes no #topic#
        f"{sandbox.url}/2/statuses/share.json",
        data={"access_token": "sandbox", "rip": "127.0.0.1", "status": f"#话题# {pub.website_url}"},
        timeout=5,
    )
    assert refused.json()["error_code"] == 10017


def test_a_long_summary_with_a_long_url_fits_as_weibo_counts_it(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    url = "http://127.0.0.1:8101/articles/" + "a" * 90 + ".html"  # 126 bytes
    summary = "公示本年度临时救助资金发放情况。" * 7  # 112 characters
    pub = sample_publication(title="临时救助公示", summary=summary, website_url=url)
    receipt = make_channel(sandbox, store).create(pub)
    assert statuses(sandbox)[receipt.remote_id]["text"] == f"【临时救助公示】{summary} {url}"


@pytest.mark.parametrize("kind", ["BMP", "WEBP"])
def test_a_cover_weibo_does_not_take_is_re_encoded_as_jpeg(
    sandbox: RunningSandbox, store: DatabaseSharedStore, kind: str
) -> None:
    images = FastAPI()

    @images.get("/cover")
    def cover() -> Response:
        return Response(image_bytes(kind), media_type=f"image/{kind.lower()}")

    with serve_in_thread(images) as image_base:
        channel = make_channel(sandbox, store, fetch_allowed_origins=(image_base,))
        receipt = channel.create(sample_publication(cover_image_url=f"{image_base}/cover"))
    posted = statuses(sandbox)[receipt.remote_id]
    assert posted["pic_format"] == "jpeg" and 0 < posted["pic_bytes"] < 5 * 1024 * 1024


def test_the_real_channel_needs_the_servers_public_ip(store: DatabaseSharedStore) -> None:
    real = Settings(weibo_access_token="t")  # api.weibo.com
    with pytest.raises(ChannelDisabled, match="PUBLISHER_WEIBO_RIP"):
        build_channel("weibo", real, store)
    loopback = Settings(weibo_access_token="t", weibo_rip="127.0.0.1")
    with pytest.raises(ChannelDisabled, match=r"127\.0\.0\.1 is not public"):
        build_channel("weibo", loopback, store)
    with pytest.raises(ValueError, match="PUBLISHER_WEIBO_RIP must be an IP address"):
        Settings(weibo_rip="my-server")
    built = build_channel("weibo", Settings(weibo_access_token="t", weibo_rip="211.156.0.1"), store)
    assert isinstance(built, WeiboChannel) and built.rip == "211.156.0.1"


def test_the_daily_call_budget_defers_until_midnight_in_beijing(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_daily_calls=2)
    channel.create(numbered(1))
    channel.create(numbered(2))
    calls = sandbox.inspect()["counters"]["calls"]

    with pytest.raises(QuotaExhausted) as caught:
        channel.create(numbered(3))

    assert caught.value.until == next_beijing_midnight()
    assert sandbox.inspect()["counters"]["calls"] == calls  # refused before calling
    [use] = channel.budget_usage()
    assert (use.endpoint, use.used, use.limit, use.left) == ("calls", 2, 2, 0)


def test_weibo_s_own_daily_limit_defers_until_its_midnight(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    configure(sandbox, daily_calls=1)  # Weibo allows fewer calls than we count on
    channel = make_channel(sandbox, store)
    channel.create(numbered(1))

    with pytest.raises(RateLimited) as caught:
        channel.create(numbered(2))

    assert caught.value.code == "10023"
    assert abs((caught.value.until - next_beijing_midnight()).total_seconds()) < 5
    assert len(statuses(sandbox)) == 1


def test_a_repost_whose_worker_died_is_found_by_its_link_though_its_note_is_lost(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    """A worker killed between the repost's share and its answer leaves no OutcomeUnknown to
    record, and a flushed store no note: the recorded post is gone, the new one is found on
    the timeline by its link, never taken for absent (which would post a second copy)."""
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    first = channel.create(pub)
    edited = replace(pub, summary="发放对象名单已更新。", content_hash="1" * 64)
    requests.post(
        f"{sandbox.url}/2/statuses/destroy.json",
        data={"access_token": "sandbox", "id": first.remote_id},
        timeout=5,
    ).raise_for_status()
    reposted = share_by_hand(sandbox, f"【{edited.title}】{edited.summary} {edited.website_url}")
    with store.database.session() as session:  # the notes are gone with the store
        session.execute(delete(SharedValue).where(SharedValue.key.like("weibo:%")))

    found = channel.lookup(edited, Remote(first.remote_id, first.url, first.state))

    assert found is not None and found.remote_id == reposted


def test_a_search_that_fails_gives_its_hour_back(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    """A busy Weibo answering the timeline search does not hold the lost post for an hour:
    the next lookup searches again and finds it."""
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    sandbox.faults(timeout_next_writes=1, hang_seconds=2)
    with pytest.raises(OutcomeUnknown):
        channel.create(pub)
    sandbox.faults(error_rate=1.0)
    with pytest.raises(Retryable):
        channel.lookup(pub, None)
    sandbox.faults(error_rate=0.0)

    found = channel.lookup(pub, None)

    assert found is not None and found.remote_id == max(statuses(sandbox), key=int)


def add_history(sandbox: RunningSandbox, text: str, age_seconds: float) -> str:
    answer = requests.post(
        f"{sandbox.url}/_sandbox/weibo/history",
        json={"text": text, "age_seconds": age_seconds},
        timeout=5,
    )
    answer.raise_for_status()
    return str(answer.json()["idstr"])


def test_the_sandbox_s_history_is_older_than_every_share_on_its_timeline(
    sandbox: RunningSandbox,
) -> None:
    shared = share_by_hand(sandbox, f"今日公告 {numbered(1).website_url}")
    old = add_history(sandbox, "往日公告：松山湖片区停水。", 86400)

    shown = timeline(sandbox)

    assert [idstr(s) for s in shown] == [shared, old]  # newest first, by when each was made
    made = created_at(shown[1])
    assert made is not None and abs(made.timestamp() - (time.time() - 86400)) < 5
    assert int(old) < int(shared)  # Weibo's ids grow with time
    for bad in ({"text": "", "age_seconds": 1}, {"text": "x", "age_seconds": -1}, {"text": "x"}):
        refused = requests.post(f"{sandbox.url}/_sandbox/weibo/history", json=bad, timeout=5)
        assert refused.status_code == 422
    assert len(statuses(sandbox)) == 2


HISTORY = "松山湖管委会：本周六上午举办社区义诊活动，欢迎居民参加。"
DAY = 86400.0


def posts_linking(sandbox: RunningSandbox, pub: Publication) -> int:
    return sum(pub.website_url in s["text"] for s in live(sandbox) if pub.website_url)


@pytest.mark.parametrize("noted_in", ["shared store", "delivery"])
def test_a_share_whose_worker_died_before_sending_is_absent_once_the_timeline_reaches_back(
    sandbox: RunningSandbox, store: DatabaseSharedStore, noted_in: str
) -> None:
    """A worker killed after noting a share and before sending it leaves a note and no post.
    Two minutes later (Weibo's "1-2 minutes"), a timeline whose posts reach back to before
    the share proves it was never made: the lookup says so, and the create posts it once."""
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    add_history(sandbox, HISTORY, DAY)
    sent = time.time() - channel.slow_seconds - 5
    channel.finder.sending(pub, sent)
    remote = None
    if noted_in == "delivery":  # the store flushed: only the delivery's remote state has it
        remote = Remote("", None, {"unanswered": channel.finder.unanswered(pub)})
        channel.finder.failed(pub, sent)

    assert channel.lookup(pub, remote) is None

    assert channel.finder.unanswered(pub) == []
    receipt = channel.create(pub)
    assert posts_linking(sandbox, pub) == 1 and len(live(sandbox)) == 2
    assert receipt.remote_id == max(statuses(sandbox), key=int)


def test_a_lost_share_stays_unknown_while_the_timeline_does_not_reach_back_before_it(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store)
    pub = sample_publication()
    add_history(sandbox, HISTORY, DAY)
    channel.finder.sending(pub, time.time() - channel.slow_seconds - 5)
    for n in range(5):  # newer posts: the five-post timeline no longer shows the history
        channel.create(numbered(n))

    with pytest.raises(OutcomeUnknown) as caught:
        channel.lookup(pub, None)

    assert "可能已被新微博挤出" in caught.value.explanation
    assert caught.value.state["unanswered"] == channel.finder.unanswered(pub) != []
    assert posts_linking(sandbox, pub) == 0 and len(statuses(sandbox)) == 6


def test_a_share_weibo_may_still_be_showing_is_searched_once_then_concluded_when_it_can(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    channel = make_channel(sandbox, store, weibo_slow_seconds=3)
    pub = sample_publication()
    add_history(sandbox, HISTORY, DAY)
    sent = time.time()
    channel.finder.sending(pub, sent)

    with pytest.raises(OutcomeUnknown) as caught:  # the one early search: not there yet
        channel.lookup(pub, None)
    assert "微博可能尚未显示它" in caught.value.explanation
    assert "暂不重发" in caught.value.explanation
    calls = sandbox.inspect()["counters"]["calls"]
    assert calls == 1
    for _ in range(3):  # the engine's retries meanwhile: no search, no call
        with pytest.raises(OutcomeUnknown):
            channel.lookup(pub, None)
    assert sandbox.inspect()["counters"]["calls"] == calls
    assert channel.finder.unanswered(pub) == [sent]

    time.sleep(max(0.0, sent + 3.1 - time.time()))
    assert channel.lookup(pub, None) is None  # the hour's search, which can conclude
    assert sandbox.inspect()["counters"]["calls"] == calls + 1
    assert channel.finder.unanswered(pub) == [] and posts_linking(sandbox, pub) == 0


def test_a_share_weibo_said_was_posted_is_never_taken_for_absent(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    """Weibo answered 20032 ("posted, server slow"); the post is then deleted by hand, so
    no search finds it. Weibo said it went out: it stays unknown for an operator, also with
    the shared store's notes lost (the delivery keeps them)."""
    channel = make_channel(sandbox, store, weibo_slow_seconds=0)
    pub = sample_publication()
    add_history(sandbox, HISTORY, DAY)
    configure(sandbox, slow_posts=1)
    with pytest.raises(OutcomeUnknown) as answered:
        channel.create(pub)
    assert answered.value.code == "20032"
    kept = dict(answered.value.state)
    assert kept["posted"] == kept["unanswered"] != []
    posted = max(statuses(sandbox), key=int)
    requests.post(
        f"{sandbox.url}/2/statuses/destroy.json",
        data={"access_token": "sandbox", "id": posted},
        timeout=5,
    ).raise_for_status()

    with pytest.raises(OutcomeUnknown) as caught:
        channel.lookup(pub, Remote("", None, kept))
    assert "微博曾答复该微博已发布" in caught.value.explanation
    with store.database.session() as session:  # the notes are gone with the store
        session.execute(delete(SharedValue).where(SharedValue.key.like("weibo:%")))
    with pytest.raises(OutcomeUnknown) as caught:
        channel.lookup(pub, Remote("", None, kept))
    assert "微博曾答复该微博已发布" in caught.value.explanation

    assert len(statuses(sandbox)) == 2 and posts_linking(sandbox, pub) == 0
    assert channel.finder.unanswered(pub) == []  # the delivery's note is what held it


def test_a_lost_correction_never_sent_leaves_the_original_post_recorded(
    sandbox: RunningSandbox, store: DatabaseSharedStore
) -> None:
    """A correction whose worker died before sending: once proven absent, the lookup answers
    with the original post (not this revision), so the engine corrects it again rather than
    forget a live post."""
    channel = make_channel(sandbox, store, weibo_edit_policy="correction")
    add_history(sandbox, HISTORY, DAY)
    first = channel.create(sample_publication())
    recorded = Remote(first.remote_id, first.url, first.state)
    edited = sample_publication(summary="发放对象名单已更新。", content_hash="1" * 64)
    channel.finder.sending(edited, time.time() - channel.slow_seconds - 5)

    found = channel.lookup(edited, recorded)

    assert found is not None and found.remote_id == first.remote_id
    assert found.content_hash is None  # the original: the correction is still to be posted
    assert channel.finder.unanswered(edited) == []
    corrected = channel.update(edited, Remote(found.remote_id, found.url, found.state))
    assert corrected.remote_id != first.remote_id and len(live(sandbox)) == 3
