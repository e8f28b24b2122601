"""The explicit table of channel kinds: `kind → "module:Class"`, in delivery order.

The website comes first: the catalogue, WeChat and Weibo link to its article page.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from channels.base import Channel, SharedStore

if TYPE_CHECKING:
    from publisher.config import Settings

CHANNELS: dict[str, str] = {
    "website": "channels.website:WebsiteChannel",
    "catalogue": "channels.catalogue:CatalogueChannel",
    "wechat": "channels.wechat:WeChatChannel",
    "weibo": "channels.weibo:WeiboChannel",
}
KINDS: tuple[str, ...] = tuple(CHANNELS)


class ChannelDisabled(Exception):
    """The channel is not configured; the message says what to set."""


class ChannelFactory(Protocol):
    kind: str
    title: str

    @classmethod
    def from_settings(cls, settings: Settings, shared: SharedStore) -> Channel: ...


def channel_class(kind: str) -> type[Channel]:
    try:
        dotted = CHANNELS[kind]
    except KeyError:
        raise KeyError(f"unknown channel kind {kind!r}; known: {', '.join(KINDS)}") from None
    module_name, _, class_name = dotted.partition(":")
    cls: type[Channel] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_channel(kind: str, settings: Settings, shared: SharedStore) -> Channel:
    """The configured adapter for `kind`. Raises `ChannelDisabled` with the reason."""
    cls = channel_class(kind)
    factory = getattr(cls, "from_settings", None)
    if factory is None:
        raise ChannelDisabled(f"{kind}: adapter has no from_settings()")
    channel: Channel = factory(settings, shared)
    return channel
