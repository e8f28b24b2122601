"""WeChat's server callback: URL verification and the PUBLISHJOBFINISH and MASSSENDJOBFINISH
events (docs/protocols.md §5).

WeChat signs every call with `signature` = sha1 of the sorted, concatenated (token, timestamp,
nonce). `GET` is the URL check when the callback is configured: answer `echostr` verbatim.
`POST` carries XML events; a finished publish job (`PUBLISHJOBFINISH`) is handed to
`on_publish_finished(publish_id, article_id)`, which lets the delivery engine look the job up
now instead of waiting for its next sparse poll; a finished mass send (`MASSSENDJOBFINISH`:
`MsgID` and `Status`, "send success", "send fail" or "err(…)", https://developers.weixin.qq.com/
doc/service/guide/product/message/Batch_Sends.html) to `on_mass_finished(msg_id, status)`.
Both events pass the same checks below. WeChat expects "success" (or an empty body) within 5 s.

In plaintext mode (明文模式) the signature covers the query string only, never the body: a
signed URL (it shows in access logs and proxies) could be replayed with any body. So:
- every signed (timestamp, nonce, signature) is accepted once (`first_use`), and only within
  `MAX_SKEW_SECONDS` of our clock;
- with an EncodingAESKey configured (安全模式, or 兼容模式 which sends both the plaintext and
  `<Encrypt>`), events are taken only from `<Encrypt>`, whose `msg_signature` is
  sha1(sorted token, timestamp, nonce, Encrypt) and whose AES plaintext carries our AppID;
  an unencrypted POST is refused, so a leaked plaintext signature gets nowhere. WeChat's
  scheme: https://developers.weixin.qq.com/doc/subscription/guide/dev/push/encryption.md
  ("消息加解密说明"), implemented by `wechatpy.crypto.WeChatCrypto` (its sample code's port).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300
# A signed triple is refused again for as long as its timestamp could be accepted at all.
REPLAY_MEMORY_SECONDS = 2 * MAX_SKEW_SECONDS
MAX_EVENT_BYTES = 64 * 1024


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


@dataclass(frozen=True)
class CallbackKeys:
    """What WeChat signs and encrypts with: the server settings' Token, and in safe or
    compatible mode the EncodingAESKey and the account's AppID."""

    token: str
    aes_key: str | None = None
    appid: str | None = None

    def crypto(self) -> WeChatCrypto | None:
        if not self.aes_key:
            return None
        return WeChatCrypto(self.token, self.aes_key, self.appid or "")


def wechat_callback_router(
    keys: CallbackKeys,
    first_use: Callable[[str, float], bool],
    on_publish_finished: Callable[[str, str | None], None],
    on_mass_finished: Callable[[str, str], None] | None = None,
) -> APIRouter:
    """GET/POST `/wechat/callback`. A bad, stale, reused or missing signature, and with an
    AES key an unencrypted or undecryptable body, is answered 403.

    `first_use(key, seconds)` answers True the first time `key` is seen within `seconds`
    (the replay cache). `on_publish_finished(publish_id, article_id)` gets the article id when
    WeChat published the job (status 0), None when it failed it; `on_mass_finished(msg_id,
    status)` gets WeChat's `Status` of a mass send verbatim (None: mass sends are not ours).
    """
    router = APIRouter(tags=["wechat callback"])
    crypto = keys.crypto()

    def verify(request: Request, signature_param: str, signed: str) -> None:
        """`signed` is the signature WeChat should have sent in `signature_param`."""
        q = request.query_params
        if not hmac.compare_digest(signed, q.get(signature_param, "")):
            raise HTTPException(403, f"invalid {signature_param}")
        try:
            skew = abs(time.time() - int(q.get("timestamp", "")))
        except ValueError:
            raise HTTPException(403, "timestamp is not Unix seconds") from None
        if skew > MAX_SKEW_SECONDS:
            raise HTTPException(403, f"timestamp is {int(skew)}s from our clock")
        triple = f"{q['timestamp']}:{q.get('nonce', '')}:{signed}"
        digest = hashlib.sha256(triple.encode()).hexdigest()
        if not first_use(f"wechat:callback:{digest}", REPLAY_MEMORY_SECONDS):
            raise HTTPException(403, "this signed request was used already")

    def plain_signature(request: Request) -> str:
        q = request.query_params
        return wechat_signature(keys.token, q.get("timestamp", ""), q.get("nonce", ""))

    @router.get("/wechat/callback", response_class=PlainTextResponse)
    def verify_url(request: Request) -> str:
        # The URL check is signed as in plaintext mode whatever the mode (echostr is plain).
        verify(request, "signature", plain_signature(request))
        return request.query_params.get("echostr", "")

    def event_xml(request: Request, body: bytes) -> ElementTree.Element:
        """The event, verified: decrypted from `<Encrypt>` when we hold the AES key."""
        if crypto is None:
            verify(request, "signature", plain_signature(request))
            return parse_xml(body)
        encrypted = parse_xml(body).findtext("Encrypt")
        if not encrypted:
            raise HTTPException(403, "safe mode: events must be encrypted (<Encrypt>)")
        q = request.query_params
        signed = msg_signature(keys.token, q.get("timestamp", ""), q.get("nonce", ""), encrypted)
        verify(request, "msg_signature", signed)
        try:
            plain = crypto.decrypt_message(
                {"Encrypt": encrypted}, signed, q["timestamp"], q.get("nonce", "")
            )
        except (InvalidSignatureException, InvalidAppIdException):
            raise HTTPException(403, "the encrypted event is not for this account") from None
        except (ValueError, struct.error, IndexError):
            raise HTTPException(403, "the encrypted event does not decrypt") from None
        return parse_xml(plain.encode())

    @router.post("/wechat/callback", response_class=PlainTextResponse)
    async def receive_event(request: Request) -> str:
        body = await request.body()
        if len(body) > MAX_EVENT_BYTES:
            raise HTTPException(413, f"event larger than {MAX_EVENT_BYTES} bytes")
        root = event_xml(request, body)
        event = (root.findtext("Event") or "").strip()
        if event == "MASSSENDJOBFINISH" and on_mass_finished is not None:
            return mass_finished(root, on_mass_finished)
        if event != "PUBLISHJOBFINISH":
            return "success"  # other events (follows, menu clicks) are not ours to handle
        info = root.find("PublishEventInfo")
        publish_id = (info.findtext("publish_id") if info is not None else None) or ""
        if not publish_id.strip():
            raise HTTPException(400, "PUBLISHJOBFINISH without publish_id")
        status = (info.findtext("publish_status") if info is not None else None) or ""
        article_id = (info.findtext("article_id") if info is not None else None) or ""
        log.info("wechat publish %s finished with status %s", publish_id.strip(), status)
        published = status.strip() == "0" and article_id.strip()
        on_publish_finished(publish_id.strip(), article_id.strip() if published else None)
        return "success"  # WeChat's expected answer; an encrypted reply is only for replies

    def mass_finished(root: ElementTree.Element, record: Callable[[str, str], None]) -> str:
        msg_id = (root.findtext("MsgID") or root.findtext("MsgId") or "").strip()
        if not msg_id:
            raise HTTPException(400, "MASSSENDJOBFINISH without MsgID")
        status = (root.findtext("Status") or "").strip()[:64]
        log.info("wechat mass send %s finished: %s", msg_id, status)
        record(msg_id, status)
        return "success"

    return router


def msg_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Safe mode's body signature: sha1 of the sorted (token, timestamp, nonce, Encrypt)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def parse_xml(body: bytes) -> ElementTree.Element:
    try:  # defusedxml: no entity expansion, no external entities
        root: ElementTree.Element = defused.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise HTTPException(400, "body is not acceptable XML") from exc
    return root
