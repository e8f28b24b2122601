"""WeChat's server callback: URL verification and the PUBLISHJOBFINISH event (docs/protocols.md §5).

WeChat signs every call with `signature` = sha1 of the sorted, concatenated (token, timestamp,
nonce). `GET` is the URL check when the callback is configured: answer `echostr` verbatim.
`POST` carries XML events; a finished publish job (`PUBLISHJOBFINISH`) is handed to
`on_publish_finished(publish_id)`, which lets the delivery engine look the job up now instead of
waiting for its next sparse poll. WeChat expects "success" (or an empty body) within 5 s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300
MAX_EVENT_BYTES = 64 * 1024


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def wechat_callback_router(
    token: str, on_publish_finished: Callable[[str, str | None], None]
) -> APIRouter:
    """GET/POST `/wechat/callback`. A bad or missing signature is answered 403.

    `on_publish_finished(publish_id, article_id)` gets the article id when WeChat published
    the job (status 0), None when it failed it.
    """
    router = APIRouter(tags=["wechat callback"])

    def verify(request: Request) -> None:
        q = request.query_params
        expected = wechat_signature(token, q.get("timestamp", ""), q.get("nonce", ""))
        if not hmac.compare_digest(expected, q.get("signature", "")):
            raise HTTPException(403, "invalid signature")
        # In plaintext mode the signature does not cover the body: a stale signed URL must
        # not be replayable with any body.
        try:
            skew = abs(time.time() - int(q.get("timestamp", "")))
        except ValueError:
            raise HTTPException(403, "timestamp is not Unix seconds") from None
        if skew > MAX_SKEW_SECONDS:
            raise HTTPException(403, f"timestamp is {int(skew)}s from our clock")

    @router.get("/wechat/callback", response_class=PlainTextResponse)
    def verify_url(request: Request) -> str:
        verify(request)
        return request.query_params.get("echostr", "")

    @router.post("/wechat/callback", response_class=PlainTextResponse)
    async def receive_event(request: Request) -> str:
        verify(request)
        body = await request.body()
        if len(body) > MAX_EVENT_BYTES:
            raise HTTPException(413, f"event larger than {MAX_EVENT_BYTES} bytes")
        try:  # defusedxml: no entity expansion, no external entities
            root = defused.fromstring(body)
        except (ElementTree.ParseError, DefusedXmlException) as exc:
            raise HTTPException(400, "body is not acceptable XML") from exc
        if (root.findtext("Event") or "").strip() != "PUBLISHJOBFINISH":
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
        return "success"

    return router
