"""Pushing to followers: a digest draft of several articles, mass-sent once a day.

`WeChatPush` gives `channels.wechat.WeChatChannel` the calls the daily digest
(`publisher.delivery.wechat_digest`) makes: `create_digest_draft` (`draft/add` with up to 8
articles), `mass_send` (`message/mass/sendall`: 45028 once the account's mass sends for
today are spent; a `clientmsgid` WeChat has seen in the last 24 hours answers 45065, which
counts as sent) and `mass_status` (`message/mass/get`). `digest_clientmsgid` gives the same
digest the same clientmsgid, so that a repeated send is recognised instead of sent twice.

A sendall WeChat accepts is only a job: its result comes later, as the `MASSSENDJOBFINISH`
event or from `message/mass/get` (https://developers.weixin.qq.com/doc/service/guide/product/
message/Batch_Sends.html). The digest records, per article, the message (`msg_id`) and the
article's position in it (`article_idx`, from 1) in the item's delivery (`mass_copies` in its
remote state), so that retracting the item also deletes the pushed copy: `delete_mass_copies`
calls `message/mass/delete` with both (https://developers.weixin.qq.com/doc/service/api/
notify/message/api_deletemassmsg: "article_idx … 第一篇编号为1，该字段不填或填0会删除全部文章").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from wechatpy.client.api.base import BaseWeChatAPI
from wechatpy.exceptions import WeChatClientException

from channels.base import Publication
from channels.errors import Permanent, QuotaExhausted, RateLimited
from channels.wechat_api import answer
from channels.wechat_calls import PREPARE, WeChatCalls, next_beijing_midnight

MASS_QUOTA = 45028
MASS_DUPLICATE = 45065
MASS_ABSENT = 40059  # "invalid msg id": no such message (or nothing left of it) to delete
MASS_SENDING = "SENDING"  # message/mass/get's msg_status while WeChat is still sending
MASS_SENDING_WAIT = timedelta(minutes=5)  # how long a retraction waits for a send to finish


@dataclass(frozen=True)
class MassSend:
    """A mass send WeChat accepted (`duplicate`: it had this clientmsgid already)."""

    msg_id: str | None
    duplicate: bool = False
    msg_data_id: str | None = None


class WeChatMassDelete(BaseWeChatAPI):
    """`message/mass/delete`: the pushed copy of one article (`article_idx` from 1)."""

    def delete(self, msg_id: str, article_idx: int) -> None:
        body = {"msg_id": int(msg_id) if msg_id.isdigit() else msg_id, "article_idx": article_idx}
        answer(self._post("message/mass/delete", data=body))


def digest_clientmsgid(day: str, audience: str, article_ids: Sequence[str]) -> str:
    """The clientmsgid of a digest: the same digest always gets the same id (≤ 64 chars)."""
    basis = json.dumps([day, audience, sorted(article_ids)], separators=(",", ":"))
    return f"d{day.replace('-', '')}-{hashlib.sha256(basis.encode()).hexdigest()[:48]}"


class WeChatPush(WeChatCalls):
    """The digest's calls; `channels.wechat.WeChatChannel` provides `_article`."""

    def _article(self, pub: Publication) -> dict[str, Any]:
        """One draft article for `pub` (images uploaded to WeChat)."""
        raise NotImplementedError

    def create_digest_draft(self, pubs: Sequence[Publication]) -> str:
        """A draft of up to 8 articles for a mass send; returns its media_id."""
        if not 1 <= len(pubs) <= 8:
            raise ValueError("a WeChat digest holds 1 to 8 articles")
        articles = [self._article(pub) for pub in pubs]
        return self._call("draft/add", lambda: self.client.draft.add(articles), write=PREPARE)

    def mass_send(self, media_id: str, *, tag_id: str | None, clientmsgid: str) -> MassSend:
        """Send the draft to all followers (tag_id None) or one tag.

        A clientmsgid WeChat already saw (45065) counts as sent. Raises QuotaExhausted when
        the account's mass sends for today are spent (45028), OutcomeUnknown on a lost answer.
        """

        def sendall() -> dict[str, Any]:
            try:
                return self.client.mass.sendall(media_id, tag_id=tag_id, clientmsgid=clientmsgid)
            except WeChatClientException as exc:
                if exc.errcode != MASS_DUPLICATE:
                    raise
                return {"msg_id": _msg_id_of(exc), "duplicate": True}

        try:
            result = self._call("message/mass/sendall", sendall, write=True)
        except QuotaExhausted:
            raise
        except Permanent as exc:
            if exc.code == str(MASS_QUOTA):
                raise QuotaExhausted(
                    "wechat: today's mass send is used up; the digest waits for tomorrow",
                    until=next_beijing_midnight(),
                    code=exc.code,
                    message=exc.message,
                ) from exc
            raise
        msg_id, msg_data_id = result.get("msg_id"), result.get("msg_data_id")
        return MassSend(
            msg_id=None if msg_id is None else str(msg_id),
            duplicate=bool(result.get("duplicate")),
            msg_data_id=None if msg_data_id is None else str(msg_data_id),
        )

    def mass_status(self, msg_id: str) -> str:
        """WeChat's status of a mass send (e.g. SEND_SUCCESS, SENDING, SEND_FAIL, DELETE)."""
        result = self._call("message/mass/get", lambda: self.client.mass.get(msg_id), write=False)
        return str(result["msg_status"])

    def delete_mass_copies(self, state: Mapping[str, Any]) -> None:
        """Delete the pushed copies recorded in a delivery's remote state (`mass_copies`:
        `[{"msg_id", "article_idx"}]`); one already gone is not an error."""
        for copy in state.get("mass_copies") or []:
            self._delete_mass_copy(str(copy["msg_id"]), int(copy["article_idx"]))

    def _delete_mass_copy(self, msg_id: str, article_idx: int) -> None:
        """Only a message that was sent can be deleted ("只有通过 api 发送的并且已经发送成功的
        消息才能删除", api_deletemassmsg): while WeChat is still sending it, raises RateLimited
        (a wait, not a failure of the channel), so that the retraction comes back for the copy
        once it is out; one that failed has no copy."""
        api = WeChatMassDelete(self.client)
        try:
            self._call("message/mass/delete", lambda: api.delete(msg_id, article_idx), write=True)
        except Permanent as exc:
            if exc.code != str(MASS_ABSENT):
                raise
            try:
                status = self.mass_status(msg_id)
            except Permanent:
                return  # WeChat knows no such message: nothing to delete
            if status == MASS_SENDING:
                raise RateLimited(
                    "wechat: the digest with this item is still being sent; its copy is "
                    "deleted once it is out",
                    until=datetime.now(UTC) + MASS_SENDING_WAIT,
                    code=exc.code,
                    message=exc.message,
                ) from exc


def _msg_id_of(exc: WeChatClientException) -> str | None:
    try:
        body = exc.response.json() if exc.response is not None else {}
    except ValueError:
        return None
    msg_id = body.get("msg_id") if isinstance(body, dict) else None
    return None if msg_id is None else str(msg_id)
