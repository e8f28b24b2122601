"""The shared HTTP error mapping of every adapter: what a failed exchange becomes."""

from __future__ import annotations

import requests

from channels.base import transport_error
from channels.errors import OutcomeUnknown, Retryable
from tests.support import free_port


def test_secrets_in_urls_never_reach_the_stored_error_text() -> None:
    exc = requests.ConnectionError(
        "HTTPSConnectionPool(host='api.weixin.qq.com', port=443): Max retries exceeded with "
        "url: /cgi-bin/draft/add?access_token=TOKEN-abc123&appsecret=S3cret (Caused by x)"
    )
    error = transport_error("wechat", exc, write=True, what="draft/add")
    assert error.message is not None
    assert "TOKEN-abc123" not in error.message and "S3cret" not in error.message
    assert "access_token=***" in error.message and "draft/add" in error.message


def test_a_refused_connection_is_retryable_and_a_read_timeout_on_a_write_is_unknown() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    try:
        requests.put(url, timeout=1)
    except requests.RequestException as exc:
        refused = transport_error("website", exc, write=True)
    assert isinstance(refused, Retryable) and not isinstance(refused, OutcomeUnknown)
    lost = transport_error("website", requests.ReadTimeout("read timed out"), write=True)
    assert isinstance(lost, OutcomeUnknown)
    assert isinstance(transport_error("website", requests.ReadTimeout("x"), write=False), Retryable)


def test_a_read_rides_out_a_dropped_connection_but_a_write_is_never_repeated() -> None:
    """A server that drops the first connection: the GET is tried again, the PUT is not."""
    import socket
    import threading

    from channels.base import HttpChannel

    class Probe(HttpChannel):
        kind = "probe"

        def create(self, pub: object) -> object:  # type: ignore[override]
            raise NotImplementedError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        for n in range(3):
            conn, _ = listener.accept()
            seen.append(conn.recv(65536).split(b" ", 1)[0])
            if n % 2 == 0:  # drop it without an answer
                conn.close()
                continue
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
            )
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    channel = Probe(f"http://127.0.0.1:{port}", timeout=2)
    answer = channel.request("GET", "/x")
    assert answer is not None and answer.status == 200 and seen == [b"GET", b"GET"]
    try:
        channel.request("PUT", "/x", payload={"a": 1})
    except OutcomeUnknown:
        pass
    else:
        raise AssertionError("a dropped write must be outcome-unknown, not retried")
    assert seen == [b"GET", b"GET", b"PUT"]
    listener.close()
