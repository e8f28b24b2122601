"""Mass sends (issue 13, item 4): accepted is not sent — the result comes from the signed,
encrypted MASSSENDJOBFINISH callback through the real API (or from mass/get), an
administrator's refusal shows as rejected, and retracting a pushed item deletes its copy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from channels.base import Remote
from channels.wechat import WeChatChannel
from publisher.api.app import serve_app
from publisher.auth import create_token
from publisher.channel_config import build_channel
from publisher.cli import main as cli
from publisher.config import Settings
from publisher.db import get_database
from publisher.delivery.wechat_digest import MASS_POLL_AFTER, run_daily_digest
from publisher.models import AuditEvent, Delivery, WeChatDigest, WeChatDigestState
from publisher.shared import shared_store
from publisher.up import new_encoding_aes_key
from tests.channels.test_wechat_push import DAY_ONE, add_push_items
from tests.support import RunningSandbox, running_sandbox, serve_in_thread, wechat_on_sandbox

TOKEN = "wechat-callback-token"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox("wechat") as running:
        yield running


@pytest.fixture
def settings(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch, sandbox: RunningSandbox
) -> Settings:
    return wechat_on_sandbox(monkeypatch, sandbox.url, TOKEN, aes_key=new_encoding_aes_key())


@pytest.fixture
def channel(settings: Settings) -> WeChatChannel:
    built = build_channel("wechat", settings, shared_store(settings))
    assert isinstance(built, WeChatChannel)
    return built


@pytest.fixture
def called_back(settings: Settings, sandbox: RunningSandbox) -> Iterator[str]:
    """The API, to which the sandbox sends its events in safe mode, as WeChat would."""
    with serve_in_thread(serve_app()) as api:
        sandbox_settings(
            sandbox,
            callback_url=f"{api}/wechat/callback",
            callback_token=TOKEN,
            callback_aes_key=settings.wechat_aes_key,
        )
        yield api


def bearer(role: str) -> dict[str, str]:
    with get_database().session() as session:
        return {"Authorization": f"Bearer {create_token(session, role, None, label='test')}"}


def sandbox_settings(sandbox: RunningSandbox, **changes: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/wechat", json=changes, timeout=5).raise_for_status()


def digest_settled() -> WeChatDigest:
    """The one digest, once its result has come (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        with get_database().session() as session:
            [digest] = session.scalars(select(WeChatDigest)).all()
            session.expunge(digest)
        if digest.state != WeChatDigestState.SENDING:
            return digest
        assert time.monotonic() < deadline, "no result came for the mass send"
        time.sleep(0.1)


def wechat_state(item_id: int) -> dict[str, Any]:
    with get_database().session() as session:
        delivery = session.scalars(
            select(Delivery).where(Delivery.item_id == item_id, Delivery.channel_kind == "wechat")
        ).one()
        return dict(delivery.remote_state or {})


def mass_records(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return list(sandbox.inspect()["records"]["mass"].values())


def test_a_send_refused_by_an_administrator_shows_as_rejected(
    settings: Settings, channel: WeChatChannel, sandbox: RunningSandbox, called_back: str
) -> None:
    with get_database().session() as session:
        ids = add_push_items(session, 2, push_tags=["101"])
    sandbox_settings(sandbox, reject_next_mass=True)

    run = run_daily_digest(get_database(), channel=channel, settings=settings, now=DAY_ONE)
    digest = digest_settled()

    assert [d.item_ids for d in run.sent] == [tuple(ids)], "WeChat accepted the job"
    assert (digest.state, digest.result) == (WeChatDigestState.REJECTED, "err(30001)")
    assert digest.audience == "tag:101" and digest.finished_at is not None
    assert all(wechat_state(i)["mass_copies"] == [] for i in ids), "nothing went out to delete"
    with get_database().session() as session:
        events = session.scalars(select(AuditEvent).filter_by(action="wechat.mass_finished"))
        assert [e.details["status"] for e in events] == ["err(30001)"]
    shown = requests.get(
        f"{called_back}/api/v1/wechat/digests",
        params={"day": DAY_ONE.date().isoformat()},
        headers=bearer("operator"),
        timeout=5,
    ).json()["digests"]
    assert [(d["audience"], d["state"], d["result"]) for d in shown] == [
        ("tag:101", "rejected", "err(30001)")
    ]
    assert [i["article_idx"] for i in shown[0]["items"]] == [1, 2]
    listed = CliRunner().invoke(cli, ["wechat", "digests", "--day", "2026-11-20"])
    assert listed.exit_code == 0
    [row] = listed.output.splitlines()[1:]
    assert row.split()[:4] == ["2026-11-20", "tag:101", "rejected", "err(30001)"]


def test_a_retracted_pushed_item_is_deleted_from_the_sent_message(
    settings: Settings, channel: WeChatChannel, sandbox: RunningSandbox, called_back: str
) -> None:
    with get_database().session() as session:
        first, second = add_push_items(session, 2, push_tags=[])

    run_daily_digest(get_database(), channel=channel, settings=settings, now=DAY_ONE)
    digest = digest_settled()
    state = wechat_state(second)
    channel.delete(Remote("article-2", None, state))

    assert (digest.state, digest.result) == (WeChatDigestState.SENT, "send success")
    assert state["mass_copies"] == [{"msg_id": digest.msg_id, "article_idx": 2}]
    [record] = mass_records(sandbox)
    assert record["deleted_idx"] == [2], "the second article's pushed copy is gone"
    assert record["msg_status"] == "SEND_SUCCESS", "the first one's stays"
    assert wechat_state(first)["mass_copies"] == [{"msg_id": digest.msg_id, "article_idx": 1}]


def test_without_an_event_the_result_is_asked_of_mass_get(
    settings: Settings, channel: WeChatChannel, sandbox: RunningSandbox
) -> None:
    with get_database().session() as session:
        add_push_items(session, 1, push_tags=[])
    run_daily_digest(get_database(), channel=channel, settings=settings, now=DAY_ONE)
    with get_database().session() as session:
        [accepted] = session.scalars(select(WeChatDigest.state)).all()
    deadline = time.monotonic() + 15
    while mass_records(sandbox)[0]["msg_status"] == "SENDING":  # WeChat is still sending
        assert time.monotonic() < deadline
        time.sleep(0.1)

    soon = run_daily_digest(
        get_database(), channel=channel, settings=settings, now=datetime.now(UTC)
    )
    with get_database().session() as session:
        [still] = session.scalars(select(WeChatDigest.state)).all()
    later = datetime.now(UTC) + MASS_POLL_AFTER
    run_daily_digest(get_database(), channel=channel, settings=settings, now=later)
    digest = digest_settled()

    assert accepted == WeChatDigestState.SENDING, "errcode 0 only means accepted"
    assert still == WeChatDigestState.SENDING and soon.errors == [], "the event may still come"
    assert (digest.state, digest.result) == (WeChatDigestState.SENT, "SEND_SUCCESS")
