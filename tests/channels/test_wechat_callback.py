"""The WeChat callback hardened (issue 12, item 2), over real HTTP: safe mode (the sandbox
encrypts its PUBLISHJOBFINISH event as WeChat does), compatible mode, tampered and unencrypted
events, a signed query replayed with another body; and the adapter refusing an article whose
"阅读原文" link is another item's page, however the article id reached it."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from fastapi import FastAPI
from wechatpy.crypto import WeChatCrypto

from channels.base import Publication, Remote
from channels.wechat import WeChatChannel, finished_key
from publisher.api.wechat_callback import CallbackKeys, wechat_callback_router, wechat_signature
from tests.channels.conftest import FirstUse
from tests.channels.test_wechat import settled
from tests.contract.harness_wechat import make
from tests.contract.harnesses import SANDBOX_APP_ID, ContractHarness
from tests.support import sample_publication, serve_in_thread

TOKEN = "cb-token"
AES_KEY = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
Finished = list[tuple[str, str | None]]


@pytest.fixture
def harness() -> Iterator[ContractHarness]:
    with make() as made:
        yield made


@pytest.fixture
def finished() -> Finished:
    return []


def callback_api(first_use: FirstUse, finished: Finished, keys: CallbackKeys) -> FastAPI:
    app = FastAPI()
    app.include_router(
        wechat_callback_router(keys, first_use, lambda pid, aid: finished.append((pid, aid)))
    )
    return app


def event(publish_id: str, article_id: str) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Event>PUBLISHJOBFINISH</Event>"
        f"<PublishEventInfo><publish_id>{publish_id}</publish_id>"
        f"<publish_status>0</publish_status><article_id>{article_id}</article_id>"
        "</PublishEventInfo></xml>"
    )


def sealed(xml: str, *, appid: str = SANDBOX_APP_ID) -> tuple[dict[str, str], str]:
    """WeChat's safe-mode POST of `xml`: its query and its `<Encrypt>`."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(4)
    answer = WeChatCrypto(TOKEN, AES_KEY, appid).encrypt_message(xml, nonce, timestamp)
    root = ElementTree.fromstring(answer)
    query = {
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": wechat_signature(TOKEN, timestamp, nonce),
        "encrypt_type": "aes",
        "msg_signature": root.findtext("MsgSignature") or "",
    }
    return query, root.findtext("Encrypt") or ""


def post(api: str, query: dict[str, str], body: str) -> requests.Response:
    return requests.post(f"{api}/wechat/callback", params=query, data=body.encode(), timeout=5)


def wait_for(finished: Finished, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(finished) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_sandbox_speaks_safe_mode_and_the_event_is_acted_on(
    harness: ContractHarness, first_use: FirstUse, finished: Finished
) -> None:
    app = callback_api(first_use, finished, CallbackKeys(TOKEN, AES_KEY, SANDBOX_APP_ID))
    with serve_in_thread(app) as api:
        settings = {"callback_url": f"{api}/wechat/callback", "callback_token": TOKEN}
        requests.post(
            f"{harness.sandbox.url}/_sandbox/wechat",
            json={**settings, "callback_aes_key": AES_KEY},
            timeout=5,
        ).raise_for_status()
        receipt = harness.channel.create(sample_publication())
        wait_for(finished, 1)

    (article_id,) = harness.sandbox.inspect()["records"]["articles"]
    assert finished == [(receipt.state["publish_id"], article_id)]


def test_tampered_unencrypted_and_foreign_events_are_refused_in_safe_mode(
    first_use: FirstUse, finished: Finished
) -> None:
    app = callback_api(first_use, finished, CallbackKeys(TOKEN, AES_KEY, SANDBOX_APP_ID))
    with serve_in_thread(app) as api:
        query, encrypted = sealed(event("501", "art-1"))
        flipped = encrypted[:10] + ("A" if encrypted[10] != "A" else "B") + encrypted[11:]
        tampered = post(api, query, f"<xml><Encrypt><![CDATA[{flipped}]]></Encrypt></xml>")
        # A leaked plaintext signature is worth nothing once the account has a key.
        timestamp, nonce = str(int(time.time())), "plain1"
        plain = {
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": wechat_signature(TOKEN, timestamp, nonce),
        }
        unencrypted = post(api, plain, event("502", "art-2"))
        query_other, encrypted_other = sealed(event("503", "art-3"), appid="wx-another-account")
        other_account = post(
            api, query_other, f"<xml><Encrypt><![CDATA[{encrypted_other}]]></Encrypt></xml>"
        )

    assert tampered.status_code == 403 and "msg_signature" in tampered.text
    assert unencrypted.status_code == 403 and "encrypted" in unencrypted.text
    assert other_account.status_code == 403
    assert finished == []


def test_compatible_mode_takes_the_encrypted_event(first_use: FirstUse, finished: Finished) -> None:
    app = callback_api(first_use, finished, CallbackKeys(TOKEN, AES_KEY, SANDBOX_APP_ID))
    with serve_in_thread(app) as api:
        query, encrypted = sealed(event("601", "art-ours"))
        # 兼容模式: the plaintext fields and <Encrypt> side by side; only the latter is signed.
        both = event("666", "art-planted").replace(
            "</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        answer = post(api, query, both)

    assert (answer.status_code, answer.text) == (200, "success")
    assert finished == [("601", "art-ours")]


def test_a_signed_query_replayed_with_another_body_is_refused(
    first_use: FirstUse, finished: Finished
) -> None:
    app = callback_api(first_use, finished, CallbackKeys(TOKEN))
    with serve_in_thread(app) as api:
        timestamp, nonce = str(int(time.time())), "n0nce"
        query = {
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": wechat_signature(TOKEN, timestamp, nonce),
        }
        first = post(api, query, event("701", "art-own"))
        replayed = post(api, query, event("702", "art-other-items"))
        sealed_query, encrypted = sealed(event("703", "art-x"))
        # The same in safe mode: the event is signed, but the whole request is still good once.
        safe_app = callback_api(first_use, finished, CallbackKeys(TOKEN, AES_KEY, SANDBOX_APP_ID))
        with serve_in_thread(safe_app) as safe_api:
            body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            safe_first = post(safe_api, sealed_query, body)
            safe_again = post(safe_api, sealed_query, body)

    assert first.status_code == 200 and replayed.status_code == 403
    assert "used already" in replayed.text
    assert (safe_first.status_code, safe_again.status_code) == (200, 403)
    assert finished == [("701", "art-own"), ("703", "art-x")]


def published(harness: ContractHarness, pub: Publication) -> str:
    """`pub` published through the adapter; its article id."""
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    return str(settled(channel, pub, channel.create(pub)).remote_id)


def other_item() -> Publication:
    return sample_publication(
        item_id=43,
        external_id="item-43",
        title="松山湖2026年老旧小区改造计划公示",
        website_url="http://127.0.0.1:8101/articles/item-43.html",
        content_hash="1" * 64,
    )


def test_an_announced_article_of_another_item_is_not_adopted(harness: ContractHarness) -> None:
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    theirs = published(harness, other_item())
    pub = sample_publication()
    receipt = channel.create(pub)
    publish_id = receipt.state["publish_id"]
    channel.shared.set(finished_key(publish_id), theirs)  # what a forged callback left
    deadline = time.monotonic() + 10
    while len(harness.sandbox.inspect()["records"]["articles"]) < 2:  # ours is out
        assert time.monotonic() < deadline, "the sandbox never published"
        time.sleep(0.05)

    done = channel.lookup(pub, Remote(receipt.remote_id, None, receipt.state))

    assert done is not None and done.complete
    ours = page_of(harness, done.remote_id)
    assert done.remote_id != theirs and ours["content_source_url"] == pub.website_url
    assert done.note is not None and "不是本条信息的文章" in done.note and theirs in done.note
    assert channel.shared.get(finished_key(publish_id)) is None


def test_a_recorded_article_of_another_item_gives_way_to_the_items_own(
    harness: ContractHarness,
) -> None:
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    theirs = published(harness, other_item())
    pub = sample_publication()
    ours = published(harness, pub)
    poisoned = {"article_id": theirs, "content_hash": pub.content_hash, "publish_status": 0}

    found = channel.lookup(pub, Remote(theirs, None, poisoned))
    assert found is not None and found.remote_id == ours and found.note
    channel.delete(Remote(found.remote_id, found.url, {**poisoned, **found.state}))

    assert page_of(harness, theirs)["is_deleted"] is False  # retracting ours spared theirs
    assert page_of(harness, ours)["is_deleted"] is True


def page_of(harness: ContractHarness, article_id: str) -> dict[str, Any]:
    article = harness.sandbox.inspect()["records"]["articles"][article_id]
    news: dict[str, Any] = article["news_item"][0]
    return news


def test_getarticle_answers_the_read_more_link(harness: ContractHarness) -> None:
    """The sandbox answers `freepublish/getarticle` with `content_source_url`, as WeChat does."""
    pub = replace(sample_publication(), website_url="http://127.0.0.1:8101/articles/x.html")
    article_id = published(harness, pub)
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)

    answer = channel.client.freepublish.getarticle(article_id)

    assert answer["news_item"][0]["content_source_url"] == pub.website_url
