"""Each channel's own settings, filled in from the product's `Settings`.

`channels/` never sees `Settings`: every adapter declares the frozen dataclass it is built
from, beside it in its module. This is the one place that knows both sides: it maps the
`PUBLISHER_*` fields onto those dataclasses and, when a channel is not configured, raises
`ChannelDisabled` naming the variables to set.
"""

from __future__ import annotations

from collections.abc import Callable

from channels.base import Channel, SharedStore
from channels.errors import ChannelDisabled
from channels.fetch import FetchPolicy
from channels.registry import KINDS, build_adapter
from channels.signed_upsert import SignedUpsertSettings
from channels.wechat import WeChatSettings
from channels.wechat_calls import daily_limits
from channels.weibo import WeiboSettings
from publisher.config import Settings
from publisher.shared import can_keep_secrets

ChannelSettings = SignedUpsertSettings | WeChatSettings | WeiboSettings


def website_settings(settings: Settings) -> SignedUpsertSettings:
    """Raises `ChannelDisabled` naming every unset `PUBLISHER_WEBSITE_*` variable."""
    return _signed_upsert(
        "website",
        settings.website_api_base,
        settings.website_app_id,
        settings.website_secret,
        settings,
    )


def catalogue_settings(settings: Settings) -> SignedUpsertSettings:
    """Raises `ChannelDisabled` naming every unset `PUBLISHER_CATALOGUE_*` variable."""
    return _signed_upsert(
        "catalogue",
        settings.catalogue_api_base,
        settings.catalogue_app_id,
        settings.catalogue_secret,
        settings,
    )


def wechat_settings(settings: Settings) -> WeChatSettings:
    """Raises `ChannelDisabled` without the account's app id and secret, or without a key to
    seal the access token its workers share (`publisher.shared.can_keep_secrets`)."""
    if not settings.wechat_appid or not settings.wechat_secret:
        raise ChannelDisabled("wechat: set PUBLISHER_WECHAT_APPID and PUBLISHER_WECHAT_SECRET")
    if not can_keep_secrets(settings):
        raise ChannelDisabled(
            "wechat: disabled until PUBLISHER_SECRET_KEY is set: the access token every "
            "worker shares is stored sealed with it (README, Secrets at rest)"
        )
    return WeChatSettings(
        appid=settings.wechat_appid,
        secret=settings.wechat_secret,
        api_base=settings.wechat_api_base,
        timeout=settings.http_timeout_seconds,
        edit_policy=settings.wechat_edit_policy,
        default_author=settings.wechat_default_author,
        poll_seconds=settings.wechat_poll_seconds,
        submit_settle_seconds=settings.wechat_submit_settle_seconds,
        fetch=fetch_policy(settings),
        daily_limits=daily_limits(settings.wechat_daily_limits),
    )


def weibo_settings(settings: Settings) -> WeiboSettings:
    """Raises `ChannelDisabled` without a base URL. Without a token here the adapter still
    builds if an operator gave one (the shared store): that check is the adapter's."""
    if not settings.weibo_api_base:
        raise ChannelDisabled("weibo: disabled until PUBLISHER_WEIBO_API_BASE is set")
    return WeiboSettings(
        api_base=settings.weibo_api_base,
        access_token=settings.weibo_access_token,
        rip=settings.weibo_rip,
        account=settings.weibo_account,
        posts_per_window=settings.weibo_posts_per_hour,
        window_seconds=settings.weibo_rate_window_seconds,
        daily_calls=settings.weibo_daily_calls,
        edit_policy=settings.weibo_edit_policy,
        safe_domains=settings.weibo_safe_domains,
        web_base=settings.weibo_web_base,
        timeout=settings.http_timeout_seconds,
        fetch=fetch_policy(settings),
        slow_seconds=settings.weibo_slow_seconds,
    )


def fetch_policy(settings: Settings) -> FetchPolicy:
    """What the channels may fetch of what items link to: public addresses, plus our own
    uploads (`/media/…` of the media base URL) and `PUBLISHER_FETCH_ALLOWED_ORIGINS` wherever
    they are."""
    return FetchPolicy(
        allowed_origins=settings.fetch_allowed_origins,
        media_base=settings.media_base_url(),
        max_bytes=settings.fetch_max_bytes,
        deadline_seconds=settings.fetch_deadline_seconds,
        max_redirects=settings.fetch_max_redirects,
        max_images=settings.fetch_max_images,
    )


SETTINGS_OF: dict[str, Callable[[Settings], ChannelSettings]] = {
    "website": website_settings,
    "catalogue": catalogue_settings,
    "wechat": wechat_settings,
    "weibo": weibo_settings,
}
assert tuple(SETTINGS_OF) == KINDS, "one settings builder per channel kind, in delivery order"


def channel_settings(kind: str, settings: Settings) -> ChannelSettings:
    """The settings object the adapter of `kind` is built from.

    Raises `ChannelDisabled` (naming the variables to set) when the channel is not configured,
    `KeyError` for an unknown kind.
    """
    try:
        builder = SETTINGS_OF[kind]
    except KeyError:
        raise KeyError(f"unknown channel kind {kind!r}; known: {', '.join(KINDS)}") from None
    return builder(settings)


def build_channel(kind: str, settings: Settings, shared: SharedStore) -> Channel:
    """The configured adapter for `kind`. Raises `ChannelDisabled` with the reason."""
    return build_adapter(kind, channel_settings(kind, settings), shared)


def _signed_upsert(
    kind: str,
    api_base: str | None,
    app_id: str | None,
    secret: str | None,
    settings: Settings,
) -> SignedUpsertSettings:
    if not (api_base and app_id and secret):
        given = {"API_BASE": api_base, "APP_ID": app_id, "SECRET": secret}
        unset = [f"PUBLISHER_{kind.upper()}_{name}" for name, value in given.items() if not value]
        raise ChannelDisabled(f"{kind}: disabled until {', '.join(unset)} are set")
    return SignedUpsertSettings(api_base, app_id, secret, timeout=settings.http_timeout_seconds)
