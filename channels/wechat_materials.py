"""Permanent thumb materials: one per distinct cover, shared, and deleted once nothing uses it.

An account holds at most 1,000 permanent materials of the types other than image and news
(thumbs among them: "公众号的素材库保存总数量有上限：图文消息素材、图片素材上限为100000，其他类型为
1000", https://developers.weixin.qq.com/doc/service/api/material/permanent/api_addmaterial).
Uploading a thumb for every create, republish, correction and digest would reach that after a
few hundred items, and then every publish fails. So `WeChatMaterials.thumb_for`:

- maps the sha256 of the cover's JPEG to the media_id WeChat gave it (`thumb_key`, no time to
  live), so that the same cover is uploaded once, and a digest reuses its articles' thumbs;
- counts who uses each thumb: one use per item (`user`), counted once however often the item
  is published, and released when its article is deleted (`release_thumb`); the last release
  deletes the material (`material/del_material`, https://developers.weixin.qq.com/doc/service/
  api/material/permanent/api_delmaterial) and forgets its mapping.

The counts live in the shared store (Redis in production, which may be flushed). Every step
is ordered so that a lost key costs an upload or leaves a material behind, never a media_id
that points at a deleted material: a thumb is deleted only while its mapping is removed and no
use is counted, and a user that took the mapping re-reads it after counting its use (a release
that raced it has then removed the mapping, and the user uploads anew). `materials_held` is
what we created minus what we deleted (`health()["materials"]`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import Any

from wechatpy.client.api.base import BaseWeChatAPI

from channels.base import SharedStore
from channels.errors import Permanent
from channels.wechat_api import answer
from channels.wechat_calls import PREPARE, WeChatCalls

MATERIAL_CAP = 1000  # permanent materials other than image and news (see the module docstring)
MATERIAL_ABSENT = 40007  # "invalid media_id": already deleted
# Counters need a time to live; these are meant to outlive the account's materials.
_FOREVER = 20 * 365 * 24 * 3600.0


def thumb_key(jpeg: bytes) -> str:
    """The shared-store key holding the media_id of the thumb made of `jpeg`."""
    return f"wechat:thumb:{hashlib.sha256(jpeg).hexdigest()}"


class WeChatMaterialAPI(BaseWeChatAPI):
    """`cgi-bin/material/*` beyond what `channels.wechat_api` needs for publishing."""

    def delete(self, media_id: str) -> None:
        answer(self._post("material/del_material", data={"media_id": media_id}))


class WeChatMaterials(WeChatCalls):
    """Thumbs for `channels.wechat.WeChatChannel`, which sets `client` and `shared`."""

    shared: SharedStore

    def thumb_for(self, jpeg: bytes, user: str) -> str:
        """The media_id of a thumb of `jpeg`, uploaded only if no thumb of it is held, with
        one use counted for `user` (an item: counted once, however often it asks)."""
        key = thumb_key(jpeg)
        media_id = self.shared.get(key)
        if media_id is not None:
            self._count_use(media_id, user)
            if self.shared.get(key) == media_id:  # not released meanwhile
                return media_id
        media_id = self._call(
            "material/add_material", lambda: self.client.uploads.add_thumb(jpeg), write=PREPARE
        )
        self.shared.count("wechat:materials:created", _FOREVER)
        self.shared.set(f"wechat:material:{media_id}", key)
        self._count_use(media_id, user)
        self.shared.set(key, media_id)
        return media_id

    def release_thumb(self, media_id: str, user: str) -> None:
        """`user` no longer shows thumb `media_id`; the last user's release deletes it.

        A thumb we did not record (uploaded before thumbs were counted, or its record lost)
        is left alone: another article may show it. A release whose delete failed finishes
        it when called again.
        """
        key = self.shared.get(f"wechat:material:{media_id}")
        if key is None:
            return
        marker = f"wechat:material:{media_id}:user:{user}"
        if self.shared.get(marker) is not None:
            self.shared.delete(marker)
            self.shared.count(f"wechat:material:{media_id}:releases", _FOREVER)
        if self._users(media_id) > 0:
            return
        mapped = self.shared.get(key) == media_id  # not if the cover was uploaded anew since
        if mapped:
            self.shared.delete(key)
        if self._users(media_id) > 0:  # taken between the count and the removal: keep it
            if mapped:
                self.shared.set(key, media_id)
            return
        self._delete_material(media_id)
        self.shared.delete(f"wechat:material:{media_id}")
        self.shared.count("wechat:materials:deleted", _FOREVER)

    def release_thumbs(self, state: Mapping[str, Any], keep: Collection[str] = ()) -> None:
        """Release the thumbs a delivery's remote state records (`thumbs`, `thumb_user`),
        except those in `keep`."""
        user = state.get("thumb_user")
        for media_id in state.get("thumbs") or []:
            if user and media_id not in keep:
                self.release_thumb(str(media_id), str(user))

    def materials_held(self) -> dict[str, Any]:
        """The permanent materials we created and have not deleted, against the account's cap."""
        created = int(self.shared.get("wechat:materials:created") or 0)
        deleted = int(self.shared.get("wechat:materials:deleted") or 0)
        return {"held": max(0, created - deleted), "cap": MATERIAL_CAP}

    def _count_use(self, media_id: str, user: str) -> None:
        marker = f"wechat:material:{media_id}:user:{user}"
        if self.shared.count(marker, _FOREVER) == 1:
            self.shared.count(f"wechat:material:{media_id}:uses", _FOREVER)

    def _users(self, media_id: str) -> int:
        uses = int(self.shared.get(f"wechat:material:{media_id}:uses") or 0)
        releases = int(self.shared.get(f"wechat:material:{media_id}:releases") or 0)
        return uses - releases

    def _delete_material(self, media_id: str) -> None:
        api = WeChatMaterialAPI(self.client)
        try:
            self._call("material/del_material", lambda: api.delete(media_id), write=True)
        except Permanent as exc:
            if exc.code != str(MATERIAL_ABSENT):
                raise
