"""The one way a worker reads a URL an item links to (covers, inline images): `ImageFetcher`.

An editor writes these URLs, so each one is a request our worker makes on an editor's word,
from inside our network (server-side request forgery). Every fetch therefore:
- takes http and https only, and no user name or password in the URL;
- resolves the host name once (`getaddrinfo`) and refuses it if any address it resolves to is
  not on the public internet: loopback, private (RFC 1918), CGNAT (100.64/10), link-local,
  ULA (fc00::/7), multicast, unspecified, reserved, and the IPv4-mapped, 6to4 and NAT64 forms
  of those (`is_public`);
- connects to the address it checked, never resolving the name again (a DNS answer that
  changes between check and connect — DNS rebinding — gains nothing). This is urllib3's
  documented way to reach an IP under another name: a connection to the IP with
  `server_hostname` (TLS SNI) and `assert_hostname` (certificate check) set to the name, and
  the Host header set to it;
- follows at most `max_redirects` redirects, each hop checked the same way;
- connects directly: no proxy, from the environment or elsewhere (requests' `trust_env` does
  not come into it);
- stops at a total deadline and past `max_bytes`. Once connected, a watchdog shuts the socket
  at the deadline, so a server that trickles its headers or body cannot hold the worker
  (per-read timeouts alone would let it). Before that, the name's resolution is bounded by
  the system resolver's timeouts and the connect (TCP, TLS handshake) by the per-operation
  timeout: urllib3 hands out the socket only once the handshake is done.
Our own uploads (`media_base`: `PUBLISHER_PUBLIC_BASE_URL` + `/media/<name>`, nothing else of
the API) and the exact origins of `allowed_origins` skip the address check (they may be on
127.0.0.1); another port on the same host, or another path of the API, does not. A URL that
does not parse (a port past 65535, an unclosed `[`), written by the editor or named by a
redirect, is refused like any other: the item's problem.

A refused or failed fetch is the item's problem, never the channel's: `Permanent`, so it does
not count against the channel's circuit breaker. A 5xx or a timeout of an image host is not
retried either: the editor sees which image failed and why, and the delivery's retry (or an
edit) tries again once the image host is back. The explanation names the image as the editor
wrote it and the reason in plain words; it never carries an address we resolved, a port from
an OS error or an exception's text.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import requests.utils
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from channels.base import redact_query_secrets
from channels.errors import Permanent

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CHUNK = 64 * 1024
_MEDIA_NAME = re.compile(r"[0-9A-Za-z_-]+(\.[0-9A-Za-z]+)?")
INTERNAL = "地址指向内部网络，不予下载"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]


def normalise_origin(text: str) -> str:
    """`text` as `scheme://host:port` (lower case, port explicit). Raises `ValueError` for
    anything that is not exactly an http(s) origin (a path, a query, a user name)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) origin such as http://127.0.0.1:8000")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} must be an origin only: scheme://host:port, nothing after")
    return origin_of(parts)


def origin_of(parts: SplitResult) -> str:
    """The origin of a parsed http(s) URL, in `normalise_origin`'s form."""
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}"


def is_public(address: Address) -> bool:
    """Whether `address` is on the public internet, embedded IPv4 forms included."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True)
class FetchPolicy:
    """What a worker may fetch: `allowed_origins` (exact `scheme://host:port`) and our own
    uploads under `media_base` (`{media_base}/media/<name>`) skip the address check; at most
    `max_bytes` a file, `deadline_seconds` a fetch (redirects included), `max_redirects` hops
    and `max_images` images per item."""

    allowed_origins: tuple[str, ...] = ()
    media_base: str | None = None
    max_bytes: int = 10 * 1024 * 1024
    deadline_seconds: float = 30.0
    max_redirects: int = 3
    max_images: int = 20
    _origins: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        origins = frozenset(normalise_origin(o) for o in self.allowed_origins)
        object.__setattr__(self, "_origins", origins)

    def allows(self, parts: SplitResult) -> bool:
        return origin_of(parts) in self._origins or self._is_our_upload(parts)

    def _is_our_upload(self, parts: SplitResult) -> bool:
        """Whether `parts` names one of our uploads: `/media/` and one plain name under the
        media base's path, on its origin (no `..`, no other route of the API)."""
        if not self.media_base:
            return False
        base = urlsplit(self.media_base)
        if base.scheme not in DEFAULT_PORTS or not base.hostname:
            return False
        prefix = base.path.rstrip("/") + "/media/"
        name = parts.path[len(prefix) :]
        return (
            origin_of(parts) == origin_of(base)
            and parts.path.startswith(prefix)
            and _MEDIA_NAME.fullmatch(name) is not None
        )


class _Refused(Exception):
    """Why one fetch did not happen, in plain words for the editor."""


class ImageFetcher:
    """Fetches what one channel's items link to, under a `FetchPolicy`.

    `resolve` is `socket.getaddrinfo`'s signature (tests give a resolver of their own to name
    private addresses without a DNS server); `timeout` bounds each connect and read.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        channel: str,
        timeout: float,
        resolve: Resolver = socket.getaddrinfo,
    ) -> None:
        self.policy = policy
        self.channel = channel
        self.timeout = timeout
        self.resolve = resolve

    def check_count(self, count: int) -> None:
        """Raises `Permanent` when an item has more images than the policy allows."""
        if count > self.policy.max_images:
            raise Permanent(
                f"{self.channel}: 图片过多：共 {count} 张，每条信息最多 "
                f"{self.policy.max_images} 张，请删减后重新发布"
            )

    def fetch(self, url: str, what: str) -> tuple[bytes, str]:
        """`(bytes, content type)` of `url`; `what` names it for the editor ("封面图片").

        Raises `Permanent` naming `what`, `url` and the reason for anything but a 2xx answer
        within the policy.
        """
        deadline = time.monotonic() + self.policy.deadline_seconds
        current = url
        try:
            for _ in range(self.policy.max_redirects + 1):
                answer = self._get(current, deadline, hop=current != url)
                if isinstance(answer, tuple):
                    return answer
                current = answer
            raise _Refused(f"跳转次数过多（超过 {self.policy.max_redirects} 次）")
        except _Refused as refusal:
            raise Permanent(f"{self.channel}: {what} {shown_url(url)}：{refusal}") from None
        except (ValueError, UnicodeError):  # urlsplit or `.port`, on this URL or a redirect's
            raise Permanent(f"{self.channel}: {what} {shown_url(url)}：地址格式无效") from None

    def _get(self, url: str, deadline: float, *, hop: bool) -> tuple[bytes, str] | str:
        """One request: the body and type, or the URL a redirect points to."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise _Refused("只能下载 http 或 https 地址")
        if parts.username is not None:
            raise _Refused("地址中不能含用户名或密码")
        address = self._address(parts, hop=hop)
        connection = self._connection(parts, address, deadline)
        cut = threading.Event()
        try:
            connection.connect()  # bounded by its own timeout, the rest by the watchdog
            with _watchdog(connection.sock, deadline, cut):
                answer = self._exchange(connection, parts, url)
        except _Refused:
            raise
        except Exception as exc:  # any failure of the exchange; its text stays out of sight
            raise _Refused(_failure(exc, cut, self.policy.deadline_seconds)) from None
        finally:
            connection.close()
        if cut.is_set():  # the socket was shut under a read that then saw an early end
            raise _Refused(_failure(None, cut, self.policy.deadline_seconds))
        return answer

    def _address(self, parts: SplitResult, *, hop: bool) -> str:
        """The one address this fetch connects to. Raises `_Refused` for a name that does not
        resolve, or that resolves to any non-public address outside the allowed origins."""
        host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme]
        try:
            found = self.resolve(host, port, type=socket.SOCK_STREAM)
            addresses = [ipaddress.ip_address(str(entry[4][0]).split("%")[0]) for entry in found]
        except (OSError, UnicodeError, ValueError):
            raise _Refused("找不到该网站（域名无法解析）") from None
        if not addresses:
            raise _Refused("找不到该网站（域名无法解析）")
        if not self.policy.allows(parts) and not all(is_public(a) for a in addresses):
            raise _Refused(("跳转后的" if hop else "") + INTERNAL)
        return str(addresses[0])

    def _connection(self, parts: SplitResult, address: str, deadline: float) -> HTTPConnection:
        # The connect's own bound; the watchdog bounds everything after it.
        timeout = max(0.01, min(self.timeout, deadline - time.monotonic()))
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        if parts.scheme == "http":
            return HTTPConnection(address, port, timeout=timeout)
        host = parts.hostname or ""
        return HTTPSConnection(
            address,
            port,
            timeout=timeout,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=requests.utils.DEFAULT_CA_BUNDLE_PATH,  # the bundle requests trusts
        )

    def _exchange(
        self, connection: HTTPConnection, parts: SplitResult, url: str
    ) -> tuple[bytes, str] | str:
        target = requests.utils.requote_uri(parts.path or "/")
        if parts.query:
            target += "?" + requests.utils.requote_uri(parts.query)
        connection.request(
            "GET",
            target,
            headers={
                "Host": _host_header(parts),
                "Accept": "image/*",
                "Accept-Encoding": "identity",  # no decompression bomb behind the size cap
                "User-Agent": "publisher-image-fetch",
            },
            preload_content=False,
        )
        with connection.getresponse() as response:
            status = response.status
            location = response.headers.get("Location")
            if status in REDIRECTS and location:
                return urljoin(url, location)
            if not 200 <= status < 300:
                raise _Refused(f"对方回答 {status}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.policy.max_bytes:
                raise _Refused(_too_big(self.policy.max_bytes))
            data = bytearray()
            for chunk in response.stream(_CHUNK, decode_content=False):
                data += chunk
                if len(data) > self.policy.max_bytes:
                    raise _Refused(_too_big(self.policy.max_bytes))
            return bytes(data), response.headers.get("Content-Type", "")


@contextmanager
def _watchdog(sock: socket.socket | None, deadline: float, cut: threading.Event) -> Iterator[None]:
    """At `deadline`, set `cut` and shut `sock`, so that a read blocked on it (a server that
    trickles bytes resets every per-read timeout) returns at once. The socket is taken when
    connected: http.client lets go of it once the answer says the connection will close."""

    def shut() -> None:
        cut.set()
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), shut)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _failure(exc: Exception | None, cut: threading.Event, deadline: float) -> str:
    """The reason for a failed exchange, in plain words and nothing of `exc`'s text."""
    if cut.is_set():
        return f"下载超时（超过 {deadline:g} 秒）"
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "无法连接到该网站"
    if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
        return "下载超时（对方长时间无响应）"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError | urllib3.exceptions.SSLError):
        return "对方网站的 HTTPS 证书无效或加密连接失败"
    return "下载失败：对方网站连接中断或回答无法读取"


def shown_url(url: str) -> str:
    """`url` as the editor wrote it, less any password or token in it."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable: shown as written, bar what looks like a secret
        return redact_query_secrets(url.rpartition("@")[2] if "@" in url else url)
    if "@" in parts.netloc:
        url = urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
    return redact_query_secrets(url)


def _too_big(limit: int) -> str:
    return f"图片超过 {limit / (1024 * 1024):g} MB"


def _host_header(parts: SplitResult) -> str:
    host = (parts.hostname or "").encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    default = parts.port in (None, DEFAULT_PORTS[parts.scheme])
    return host if default else f"{host}:{parts.port}"
