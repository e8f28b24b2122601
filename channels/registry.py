"""The explicit table of channel kinds: `kind → "module:Class"`, in delivery order.

The website comes first: the catalogue, WeChat and Weibo link to its article page. Each
adapter is built from its own settings object, the frozen dataclass its module declares
(`SignedUpsertSettings`, `WeChatSettings`, `WeiboSettings`); `publisher.channel_config`
fills those in from the product's settings.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from channels import errors  # the module, so that `ChannelDisabled` is not importable from here
from channels.base import Channel, SharedStore

CHANNELS: dict[str, str] = {
    "website": "channels.website:WebsiteChannel",
    "catalogue": "channels.catalogue:CatalogueChannel",
    "wechat": "channels.wechat:WeChatChannel",
    "weibo": "channels.weibo:WeiboChannel",
}
KINDS: tuple[str, ...] = tuple(CHANNELS)


class ChannelFactory(Protocol):
    kind: str
    title: str

    @classmethod
    def from_settings(cls, settings: Any, shared: SharedStore) -> Channel: ...


def channel_class(kind: str) -> type[Channel]:
    try:
        dotted = CHANNELS[kind]
    except KeyError:
        raise KeyError(f"unknown channel kind {kind!r}; known: {', '.join(KINDS)}") from None
    module_name, _, class_name = dotted.partition(":")
    cls: type[Channel] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_adapter(kind: str, settings: object, shared: SharedStore) -> Channel:
    """The adapter for `kind`, built from that channel's own settings object.

    Raises `ChannelDisabled` with the reason when the adapter cannot work yet (Weibo with no
    token anywhere).
    """
    cls = channel_class(kind)
    factory = getattr(cls, "from_settings", None)
    if factory is None:
        raise errors.ChannelDisabled(f"{kind}: adapter has no from_settings()")
    channel: Channel = factory(settings, shared)
    return channel
