"""One typed settings object, built once from the environment (`PUBLISHER_*`, docs/architecture.md).

Adapters never read the environment: they receive the part of these settings they need.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from channels.fetch import normalise_origin
from channels.registry import KINDS
from publisher.sealing import decode_key

DEFAULT_SANDBOX_CREDENTIAL = "sandbox"
DEFAULT_SANDBOX_SECRET = "sandbox-secret"
DEFAULT_SHARED_KEY_PREFIX = "publisher:"
MIN_BOOTSTRAP_TOKEN_LENGTH = 32
MIN_AUDIT_RETENTION_DAYS = 183
# Channels whose reconcile policy is not the global one unless PUBLISHER_RECONCILE_POLICIES
# says otherwise (see `Settings.reconcile_policies`).
RECONCILE_POLICY_DEFAULTS = {"weibo": "report"}
# WeChat's EncodingAESKey: 43 base64 characters, 32 bytes once "=" is appended.
WECHAT_AES_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]")
# Broker URLs kombu serves with its Redis transport.
REDIS_BROKER_SCHEMES = ("redis://", "rediss://", "redis+socket://", "sentinel://")


class Settings(BaseSettings):
    # Errors name the variable and the rule, never the value: several values are secrets.
    model_config = SettingsConfigDict(
        env_prefix="PUBLISHER_", extra="ignore", hide_input_in_errors=True
    )

    var_dir: Path = Path("var")
    database_url: str | None = None
    broker_url: str | None = None
    redis_url: str | None = None
    # Unset: the shared store's keys start with `publisher:` and the broker's are Celery's own
    # names (what Flower and running deployments expect). Set: every key the system writes in
    # Redis (shared store and broker) starts with it, so that several deployments, or test
    # runs, can share one Redis database.
    redis_key_prefix: str | None = None
    # Serves only to create the first admin user (POST /api/v1/users); refused once one exists.
    bootstrap_token: str | None = None

    @field_validator("bootstrap_token")
    @classmethod
    def _long_enough(cls, token: str | None) -> str | None:
        if not token:  # set but empty: unset
            return None
        if len(token) < MIN_BOOTSTRAP_TOKEN_LENGTH:
            raise ValueError(
                f"PUBLISHER_BOOTSTRAP_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LENGTH} "
                f"characters (got {len(token)}); e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        return token

    # Channel tokens kept in the shared store are sealed with this key (AES-GCM, README
    # "Secrets at rest"): 32 random bytes, urlsafe base64. Unset: the embedded default keeps a
    # key of its own in {var_dir}/secret.key; with Redis or a database server tokens are
    # refused until it is set. The old keys (comma-separated) still open what they sealed.
    secret_key: SecretStr | None = None
    secret_keys_old: Annotated[tuple[SecretStr, ...], NoDecode] = ()

    @field_validator("secret_key")
    @classmethod
    def _a_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is None or not key.get_secret_value().strip():  # set but empty: unset
            return None
        try:
            decode_key(key.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"PUBLISHER_SECRET_KEY {exc}") from None
        return key

    @field_validator("secret_keys_old", mode="before")
    @classmethod
    def _comma_separated(cls, keys: Any) -> Any:
        return [k for k in keys.split(",") if k.strip()] if isinstance(keys, str) else keys

    @field_validator("secret_keys_old")
    @classmethod
    def _keys(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for number, key in enumerate(keys, 1):
            try:
                decode_key(key.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"PUBLISHER_SECRET_KEYS_OLD: key {number} {exc}") from None
        return keys

    org_code: str = "733099896"
    org_name: str = "松山湖管委会"
    timezone: str = "Asia/Shanghai"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # API processes (uvicorn workers); None: see `resolved_api_workers`.
    api_workers: int | None = Field(default=None, ge=1)
    public_base_url: str | None = None

    # Sandbox ports (docs/architecture.md) and whether `publisher up` points unset channels at them.
    website_port: int = 8101
    catalogue_port: int = 8102
    wechat_port: int = 8103
    weibo_port: int = 8104

    website_api_base: str | None = None
    website_app_id: str | None = None
    website_secret: str | None = None
    catalogue_api_base: str | None = None
    catalogue_app_id: str | None = None
    catalogue_secret: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    # Token WeChat signs callbacks with (the "Token" on the account's server settings page).
    wechat_callback_token: str | None = None
    # The EncodingAESKey of safe or compatible mode (安全模式/兼容模式; 43 characters): set, the
    # callback takes only encrypted events (publisher/api/wechat_callback.py).
    wechat_aes_key: str | None = Field(default=None, repr=False)

    @field_validator("wechat_aes_key")
    @classmethod
    def _encoding_aes_key(cls, key: str | None) -> str | None:
        if not key:  # set but empty: plain mode
            return None
        if not WECHAT_AES_KEY.fullmatch(key):
            raise ValueError(
                "PUBLISHER_WECHAT_AES_KEY must be the account's 43-character EncodingAESKey "
                f"(base64 characters, as WeChat generates it); got {len(key)} characters"
            )
        return key

    @model_validator(mode="after")
    def _safe_mode_complete(self) -> Settings:
        if self.wechat_aes_key and not (self.wechat_callback_token and self.wechat_appid):
            raise ValueError(
                "PUBLISHER_WECHAT_AES_KEY needs PUBLISHER_WECHAT_CALLBACK_TOKEN and "
                "PUBLISHER_WECHAT_APPID: safe mode signs with the token and encrypts for the AppID"
            )
        return self

    wechat_edit_policy: Literal["republish", "correction"] = "republish"
    wechat_digest_time: str = "18:00"  # Asia/Shanghai
    wechat_mass_quota: int = 1  # mass sends a day: 1 for a subscription account
    wechat_default_author: str | None = None  # None: the department's name
    wechat_poll_seconds: float = 120.0
    # After a lost submit answer, how long lookups wait for WeChat to list the article.
    wechat_submit_settle_seconds: float = 1800.0
    # Calls a day per WeChat endpoint, laid over WeChat's own quotas (channels/wechat_calls.py
    # DAILY_LIMITS), e.g. {"freepublish/getarticle": 500} for an account WeChat allows more.
    wechat_daily_limits: dict[str, NonNegativeInt] = Field(default_factory=dict)
    weibo_api_base: str = "https://api.weibo.com"
    weibo_access_token: str | None = None
    weibo_posts_per_hour: int = 30
    weibo_rate_window_seconds: float = 3600
    weibo_edit_policy: Literal["repost", "correction"] = "repost"
    # Hosts a post may link to (the app's registered safe domains); empty: the website's host.
    weibo_safe_domains: tuple[str, ...] = ()
    weibo_account: str = "default"
    # Weibo's limits (README, Weibo): `rip` is this server's public IP, required by Weibo with
    # every post (unset: the real API is refused, a sandbox gets 127.0.0.1); the account's API
    # calls a Beijing day (100 per user and app on open.weibo.com's Rate-limiting page).
    weibo_rip: str | None = None
    weibo_daily_calls: int = Field(default=100, ge=1)

    @field_validator("weibo_rip")
    @classmethod
    def _ip_address(cls, rip: str | None) -> str | None:
        if not rip:
            return None
        try:
            return str(ipaddress.ip_address(rip.strip()))
        except ValueError:
            raise ValueError(
                f"PUBLISHER_WEIBO_RIP must be an IP address (the server's public IP), not {rip!r}"
            ) from None

    weibo_web_base: str | None = None
    # How late Weibo may show a share on the timeline (its 20032 says "please wait 1-2
    # minutes"): a lost share is taken for never posted only once it is older than this.
    weibo_slow_seconds: float = Field(default=120.0, ge=0)

    # Outbound fetches of what items link to (covers, inline images; channels/fetch.py): only
    # public addresses, except our own media origin (`media_base_url`) and these exact origins
    # (JSON list of "scheme://host:port"); per fetch a total deadline, a size cap and a few
    # redirects, each checked again; per item at most `fetch_max_images` images.
    fetch_allowed_origins: tuple[str, ...] = ()
    fetch_deadline_seconds: float = Field(default=30.0, gt=0)
    fetch_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    fetch_max_images: int = Field(default=20, ge=1)

    # Delivery engine.
    # Added to the niceness of `publisher worker` and its pool: on a host the worker shares
    # with the API, the requests people wait for get the CPU first; deliveries are background
    # work and only finish a little later. 0 leaves the priority as inherited.
    worker_nice: int = Field(default=10, ge=0, le=19)
    lease_seconds: int = 120
    http_timeout_seconds: float = 10.0
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 600.0
    failure_budget_seconds: int = 24 * 3600
    sweep_interval_seconds: float = 5.0
    # The sweeper re-sends a due delivery only this long after its message was handed to the
    # broker (by the commit that made it due, or by an earlier sweep): lost messages.
    resend_after_seconds: float = 30.0
    # Circuit breaker per channel: open after this many consecutive failures, probe after the
    # cooldown (doubling on each failed probe, up to the cap).
    breaker_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0
    breaker_cooldown_cap_seconds: float = 600.0

    # Reconciliation: how often beat checks live and withdrawn deliveries against the
    # channels, how many per channel per run, and whether drift is repaired or only reported.
    reconcile_interval_seconds: float = 3600.0
    reconcile_batch: int = 200
    reconcile_policy: Literal["repair", "report"] = "repair"
    # Per channel, over the policy above (JSON: kind → policy). Weibo reports by default: its
    # lookups cannot always find an old post (issue 13), and a repair would post it again.
    reconcile_policies: dict[str, Literal["repair", "report"]] = Field(default_factory=dict)
    # The share of each daily budget (channels.budgets) a reconcile run may spend, leaving the
    # rest to publishing; what it could not check for budget it reports as unchecked.
    reconcile_budget_share: float = Field(default=0.2, gt=0, le=1)

    @field_validator("reconcile_policies")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(
                f"PUBLISHER_RECONCILE_POLICIES names unknown channels {unknown}; known: {KINDS}"
            )
        return value

    def reconcile_policy_for(self, kind: str) -> str:
        """The reconcile policy of channel `kind`: its own, else Weibo's default, else the
        global one."""
        return {**RECONCILE_POLICY_DEFAULTS, **self.reconcile_policies}.get(
            kind, self.reconcile_policy
        )

    # Catalogue sub-codes per domain are our assumption (docs/protocols.md §3), overridable per
    # domain in the store; this is the section the catalogue groups them under.
    catalogue_section: str = "0900"

    max_body_bytes: int = Field(default=1_000_000, description="body limit, bytes of UTF-8")
    # Bounded work per request (README, Security): the bytes of any request body but an
    # upload to /media (413 past it), how long a body may take to render (Markdown) and
    # sanitise in a child process, how deeply a body's HTML may nest (422 past either).
    max_request_bytes: int = Field(default=4_000_000, ge=1024)
    body_render_seconds: float = Field(default=3.0, gt=0)
    max_html_depth: int = Field(default=100, ge=8)

    # The audit trail keeps rows this long; the daily prune removes older ones. Disclosure
    # rules want at least six months of who did what, hence the floor.
    audit_retention_days: int = MIN_AUDIT_RETENTION_DAYS
    # Addresses or networks of reverse proxies whose X-Forwarded-For the audit trail believes
    # (JSON list); empty: the connecting address is the client's.
    trusted_proxies: tuple[str, ...] = ()

    # Public endpoints (README, Security). The bearer token a Prometheus scraper sends to
    # `/metrics` at the root; unset: the root's `/metrics` is off (404) and only signed-in
    # operators and supervisors read `/api/v1/metrics`.
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token")
    @classmethod
    def _scrape_token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value():  # set but empty: unset
            return None
        if len(token.get_secret_value()) < MIN_BOOTSTRAP_TOKEN_LENGTH:
            raise ValueError(
                f"PUBLISHER_METRICS_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LENGTH} "
                "characters; e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return token

    @field_validator("audit_retention_days")
    @classmethod
    def _six_months_at_least(cls, days: int) -> int:
        if days < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(
                f"PUBLISHER_AUDIT_RETENTION_DAYS must be at least {MIN_AUDIT_RETENTION_DAYS} "
                f"(six months); got {days}"
            )
        return days

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"PUBLISHER_TRUSTED_PROXIES: {proxy!r} is not an IP address or network"
                ) from None
        return proxies

    @field_validator("fetch_allowed_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(normalise_origin(origin) for origin in origins)
        except ValueError as exc:
            raise ValueError(f"PUBLISHER_FETCH_ALLOWED_ORIGINS: {exc}") from None

    def media_base_url(self) -> str:
        """Where channels fetch our own uploads (`/media/…`) from."""
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'publisher.sqlite').resolve()}"

    def resolved_api_workers(self) -> int:
        """API processes: as configured; else one on SQLite (one writer at a time anyway) and
        one per CPU, at least two, on a database server."""
        if self.api_workers is not None:
            return self.api_workers
        if self.resolved_database_url().startswith("sqlite"):
            return 1
        return max(2, os.cpu_count() or 1)

    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.var_dir / 'broker.sqlite').resolve()}"

    def shared_key_prefix(self) -> str:
        """What the keys of the Redis shared store start with."""
        return self.redis_key_prefix or DEFAULT_SHARED_KEY_PREFIX


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Kombu's transport options for the settings' broker: the same for the worker, beat and
    every process that sends to it, or they would not find each other's queues."""
    url = settings.resolved_broker_url()
    if url.startswith("sqla+"):
        # The SQLAlchemy transport hands its options to create_engine: wait on SQLite's lock
        # rather than fail while the API, worker and beat write at once.
        return {"connect_args": {"timeout": 30}}
    # Redis redelivers unacknowledged messages after this; longer than any delivery call.
    options: dict[str, Any] = {"visibility_timeout": 600}
    if settings.redis_key_prefix and url.startswith(REDIS_BROKER_SCHEMES):
        # Kombu puts this before every key it writes, its unacked hash and index included.
        options["global_keyprefix"] = settings.redis_key_prefix
        options["client_name"] = redis_client_name(settings.redis_key_prefix)
    return options


def redis_client_name(prefix: str) -> str:
    """The name (`CLIENT SETNAME`) of the Redis connections of a deployment whose keys start
    with `prefix`, so that `CLIENT LIST` tells deployments apart. Redis refuses names with
    spaces or characters outside printable ASCII."""
    return re.sub(r"[^!-~]", "_", prefix)


CHANNELS_ENV_FILE = "channels.env"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings: the environment, then `{var_dir}/channels.env`.

    `publisher up` writes the sandbox endpoints it chose to that file, so that commands run
    in another terminal (`publisher items publish …`) reach the same channels. Variables set
    in the environment always win.
    """
    var_dir = Path(os.environ.get("PUBLISHER_VAR_DIR", "var"))
    return Settings(_env_file=var_dir / CHANNELS_ENV_FILE)  # type: ignore[call-arg]


def reset_settings() -> None:
    """Forget the cached settings (tests and `publisher up` change the environment)."""
    get_settings.cache_clear()
