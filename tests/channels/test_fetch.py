"""The outbound fetcher (issue 12): what an editor's URL can make a worker read.

Every refused fetch is aimed at a real loopback server that records each request it receives,
and the test asserts it received none. Names that resolve to private addresses come from a
resolver the test gives (no DNS server here), the same `getaddrinfo` signature.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from channels import wechat_render as render
from channels.errors import Permanent
from channels.fetch import FetchPolicy, ImageFetcher, is_public
from publisher.channel_config import fetch_policy, wechat_settings, weibo_settings
from publisher.config import Settings
from tests.contract.harness_wechat import make
from tests.outbound import (
    Recorder,
    body,
    png,
    png_bomb,
    recording_server,
    redirect,
    self_signed,
    status,
    trickle,
)
from tests.support import free_port, sample_publication

PNG = png()


def fetcher(*allowed: str, resolve: Any = socket.getaddrinfo, **policy: Any) -> ImageFetcher:
    return ImageFetcher(
        FetchPolicy(allowed_origins=allowed, **policy),
        channel="wechat",
        timeout=2.0,
        resolve=resolve,
    )


def refusal(fetch: ImageFetcher, url: str, what: str = "封面图片") -> str:
    with pytest.raises(Permanent) as caught:
        fetch.fetch(url, what)
    return str(caught.value)


def resolving(names: dict[str, Sequence[str]], calls: list[str] | None = None) -> Any:
    """A `getaddrinfo` that answers `names` from the table (and counts the look-ups)."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if calls is not None:
            calls.append(host)
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        found = []
        for address in names[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            found.append((family, socket.SOCK_STREAM, 6, "", (address, port)))
        return found

    return resolve


@pytest.fixture
def internal() -> Iterator[Recorder]:
    """What an attacker wants the worker to reach: it must never receive a request."""
    with recording_server({"/x.png": body(PNG), "/internal.png": body(PNG)}) as server:
        yield server
        assert server.received == [], "the internal server was reached"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "2002:a00:1::1",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "203.119.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_a_loopback_cover_is_refused_unasked(internal: Recorder) -> None:
    url = f"{internal.url}/x.png"
    said = refusal(fetcher(), url)
    assert said == f"wechat: 封面图片 {url}：地址指向内部网络，不予下载"


def test_localhost_and_spellings_of_loopback_are_refused(internal: Recorder) -> None:
    port = internal.port
    for url in (
        f"http://localhost:{port}/internal.png",
        f"http://LOCALHOST:{port}/internal.png",
        f"http://127.1:{port}/internal.png",
        f"http://2130706433:{port}/internal.png",
        f"http://[::ffff:127.0.0.1]:{port}/internal.png",
    ):
        assert "地址指向内部网络" in refusal(fetcher(), url), url


def test_a_name_resolving_to_a_private_address_is_refused(internal: Recorder) -> None:
    names = {
        "intranet.example": ["10.0.0.5"],
        "rebind.example": ["127.0.0.1"],
        "mixed.example": ["93.184.216.34", "127.0.0.1"],  # one bad answer is enough
    }
    fetch = fetcher(resolve=resolving(names))
    for host in names:
        said = refusal(fetch, f"http://{host}:{internal.port}/x.png")
        assert "地址指向内部网络" in said
        assert "10.0.0.5" not in said and "127.0.0.1" not in said  # never what it resolved to


def test_a_redirect_from_an_allowed_origin_to_an_internal_one_is_refused(
    internal: Recorder,
) -> None:
    with recording_server({"/go": redirect(f"{internal.url}/x.png")}) as allowed:
        said = refusal(fetcher(allowed.url), f"{allowed.url}/go")
    assert said == f"wechat: 封面图片 {allowed.url}/go：跳转后的地址指向内部网络，不予下载"
    assert [path for path, _ in allowed.received] == ["/go"]


def test_the_allow_list_admits_exactly_its_origins_and_redirects_within_them() -> None:
    with (
        recording_server({"/x.png": body(PNG), "/go": redirect("/x.png", 301)}) as allowed,
        recording_server({"/x.png": body(PNG)}) as other_port,
    ):
        fetch = fetcher(allowed.url)
        assert fetch.fetch(f"{allowed.url}/go", "封面图片") == (PNG, "image/png")
        assert "内部网络" in refusal(fetch, f"{other_port.url}/x.png")
        assert "内部网络" in refusal(fetch, f"http://localhost:{allowed.port}/x.png")
        assert [path for path, _ in allowed.received] == ["/go", "/x.png"]
        assert other_port.received == []


def test_the_checked_address_is_the_one_connected_to(internal: Recorder) -> None:
    """The name is resolved once, by the check; the connection goes to that address and
    tells the server the name (Host)."""
    calls: list[str] = []
    origin = f"http://media.example:{internal.port}"
    fetch = fetcher(origin, resolve=resolving({"media.example": ["127.0.0.1"]}, calls))

    assert fetch.fetch(f"{origin}/x.png", "封面图片")[0] == PNG

    assert calls == ["media.example"]
    assert internal.received == [("/x.png", f"media.example:{internal.port}")]
    internal.received.clear()  # reached on purpose: it is allowed here


def test_our_media_origin_admits_our_uploads_only(internal: Recorder) -> None:
    """The API's origin is exempt for `/media/<name>` alone: not its other routes, not a path
    that climbs out of `/media/`."""
    fetch = ImageFetcher(FetchPolicy(media_base=f"{internal.url}/"), channel="wechat", timeout=2.0)
    refused = [
        f"{internal.url}/healthz",
        f"{internal.url}/media/../healthz",
        f"{internal.url}/media/a/b.png",
        f"{internal.url}/x.png",
    ]
    for url in refused:
        assert "内部网络" in refusal(fetch, url), url
    assert internal.received == []
    with recording_server({"/media/abc.png": body(PNG)}) as api:
        own = ImageFetcher(FetchPolicy(media_base=api.url), channel="wechat", timeout=2.0)
        assert own.fetch(f"{api.url}/media/abc.png", "封面图片") == (PNG, "image/png")


@pytest.mark.parametrize(
    "url", ["http://example.org:99999/x.png", "http://[::1/x.png", "http://example.org:abc/x"]
)
def test_a_url_that_does_not_parse_is_the_items_problem(url: str) -> None:
    """Not a crash of the adapter (which the engine would count against the channel)."""
    assert refusal(fetcher(), url) == f"wechat: 封面图片 {url}：地址格式无效"


def test_a_redirect_to_a_url_that_does_not_parse_is_refused() -> None:
    with recording_server({"/go": redirect("http://img.example:70000/x.png")}) as allowed:
        said = refusal(fetcher(allowed.url), f"{allowed.url}/go")
    assert said == f"wechat: 封面图片 {allowed.url}/go：地址格式无效"


def test_redirects_are_followed_a_few_times_only() -> None:
    loop = {f"/{n}": redirect(f"/{n + 1}") for n in range(10)}
    with recording_server(loop) as allowed:
        said = refusal(fetcher(allowed.url, max_redirects=3), f"{allowed.url}/0")
    assert "跳转次数过多" in said
    assert len(allowed.received) == 4


def test_only_http_and_https_without_credentials() -> None:
    fetch = fetcher()
    assert "只能下载 http 或 https 地址" in refusal(fetch, "file:///etc/passwd")
    assert "只能下载 http 或 https 地址" in refusal(fetch, "gopher://example.org/")
    said = refusal(fetch, "http://user:hunter2@example.org/a.png")
    assert "不能含用户名或密码" in said and "hunter2" not in said


def test_the_size_cap_stops_reading() -> None:
    big = b"\x89PNG" + bytes(5000)
    with recording_server(
        {"/declared.png": body(big), "/undeclared.png": body(big, length=False)}
    ) as allowed:
        fetch = fetcher(allowed.url, max_bytes=1000)
        for path in ("/declared.png", "/undeclared.png"):
            assert "图片超过" in refusal(fetch, f"{allowed.url}{path}")


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_server_is_cut_at_the_deadline(in_headers: bool) -> None:
    with recording_server({"/slow.png": trickle(0.2, in_headers=in_headers)}) as allowed:
        started = time.monotonic()
        said = refusal(fetcher(allowed.url, deadline_seconds=1.0), f"{allowed.url}/slow.png")
        assert time.monotonic() - started < 15, "refused within a generous timeout"
    assert "下载超时" in said


def test_failures_read_plainly_without_internal_details() -> None:
    closed = free_port()
    with recording_server({"/broken.png": status(503)}) as allowed:
        fetch = fetcher(allowed.url, f"http://127.0.0.1:{closed}")
        assert refusal(fetch, f"{allowed.url}/gone.png").endswith("：对方回答 404")
        assert refusal(fetch, f"{allowed.url}/broken.png").endswith("：对方回答 503")
        with pytest.raises(Permanent) as caught:
            fetch.fetch(f"http://127.0.0.1:{closed}/x.png", "正文第 2 张图片")
    error = caught.value
    assert (
        str(error) == f"wechat: 正文第 2 张图片 http://127.0.0.1:{closed}/x.png：无法连接到该网站"
    )
    assert error.message is None and error.code is None and error.http_status is None
    assert "found.example" in refusal(fetcher(resolve=resolving({})), "http://found.example/a")


def test_https_is_verified_against_the_name_though_the_address_is_pinned(
    tmp_path: Path,
) -> None:
    """An allowed origin on a pinned address still gets its certificate checked: a
    self-signed one for the right name is refused (nothing is read over it)."""
    with recording_server({"/x.png": body(PNG)}, tls=self_signed(tmp_path, "media.example")) as tls:
        origin = f"https://media.example:{tls.port}"
        fetch = fetcher(origin, resolve=resolving({"media.example": ["127.0.0.1"]}))
        said = refusal(fetch, f"{origin}/x.png")
    assert said.endswith("：对方网站的 HTTPS 证书无效或加密连接失败")
    assert tls.received == []


def test_secrets_in_the_url_are_not_repeated() -> None:
    said = refusal(fetcher(), "http://127.0.0.1/a.png?access_token=s3cret&x=1")
    assert "s3cret" not in said and "access_token=***" in said


def test_inline_images_are_read_by_an_html_parser() -> None:
    html = render.wechat_html(
        '<p>x</p><IMG SRC=http://a.example/1.png alt=1><img alt="2" src="http://a.example/2.png'
        '?a=1&amp;b=2"><img src=\'http://a.example/1.png\'><img src="data:image/png;base64,AA">'
        '<!-- <img src="http://a.example/commented.png"> --><p>&lt;img src="http://a.example/'
        'text.png"&gt;</p>'
    )

    sources = render.inline_images(html)

    assert sources == ["http://a.example/1.png", "http://a.example/2.png?a=1&b=2"]
    rewritten = render.replace_images(
        html, {"http://a.example/2.png?a=1&b=2": "https://mmbiz.example/2"}
    )
    assert render.inline_images(rewritten) == ["http://a.example/1.png", "https://mmbiz.example/2"]
    assert "a.example/text.png" in rewritten  # text that looks like a tag stays text


def test_an_inline_localhost_image_fails_the_article_before_anything_is_sent(
    internal: Recorder,
) -> None:
    url = f"http://localhost:{internal.port}/internal.png"
    pub = sample_publication(body_html=f'<p>图</p><p>图</p><img src="{url}">')
    with make() as harness:
        with pytest.raises(Permanent) as caught:
            harness.channel.create(pub)
        assert harness.sandbox.inspect()["records"].get("drafts", {}) == {}
    assert str(caught.value) == f"wechat: 正文第 1 张图片 {url}：地址指向内部网络，不予下载"


def test_more_images_than_allowed_are_refused_before_any_is_fetched() -> None:
    with recording_server({"/x.png": body(PNG)}) as allowed:
        html = "".join(f'<img src="{allowed.url}/x.png?{n}">' for n in range(3))
        pub = sample_publication(body_html=html, cover_image_url=f"{allowed.url}/x.png")
        policy = FetchPolicy(allowed_origins=(allowed.url,), max_images=3)
        with make(fetch=policy) as harness, pytest.raises(Permanent) as caught:
            harness.channel.create(pub)
        assert allowed.received == []
    assert "图片过多：共 4 张，每条信息最多 3 张" in str(caught.value)


def test_the_settings_allow_our_media_origin_and_the_listed_ones() -> None:
    settings = Settings(
        public_base_url="https://gov.example/publisher/",
        fetch_allowed_origins=["HTTP://127.0.0.1:9000/"],
        fetch_max_images=5,
    )

    policy = fetch_policy(settings)

    assert policy.allowed_origins == ("http://127.0.0.1:9000",)
    assert policy.media_base == "https://gov.example/publisher/"
    assert policy.max_images == 5
    channels = settings.model_copy(update={"wechat_appid": "a", "wechat_secret": "s"})
    assert wechat_settings(channels).fetch == weibo_settings(channels).fetch == policy
    with pytest.raises(ValidationError, match="PUBLISHER_FETCH_ALLOWED_ORIGINS"):
        Settings(fetch_allowed_origins=["http://127.0.0.1:9000/media"])


def test_a_pixel_bomb_cover_fails_the_article_before_it_is_decoded() -> None:
    with recording_server({"/bomb.png": body(png_bomb(20_000, 20_000))}) as allowed:
        cover = f"{allowed.url}/bomb.png"
        pub = sample_publication(cover_image_url=cover)
        policy = FetchPolicy(allowed_origins=(allowed.url,))
        with make(fetch=policy) as harness, pytest.raises(Permanent) as caught:
            harness.channel.create(pub)
    assert str(caught.value).startswith(f"wechat: 封面图片 {cover}：图片像素过多")
