"""Helpers of the outbound-fetch and pixel-bomb tests (issue 12): a loopback HTTP server that
records every request it receives, and a small PNG that declares huge dimensions."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of `width` × `height` black pixels, compressed row by row (never held
    decoded): 20,000 × 20,000 pixels, 400 MB decoded, is about 400 KB."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte, then one byte a pixel
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND")


def _chunk(kind: bytes, data: bytes = b"") -> bytes:
    checksum = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + checksum


# What a route does with the request's handler: write a whole answer.
Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Recorder:
    """A server's base URL and every request it received: `(path, Host header)`."""

    url: str
    port: int
    routes: dict[str, Route]
    received: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def recording_server(routes: dict[str, Route] | None = None) -> Iterator[Recorder]:
    """A real HTTP server on 127.0.0.1 (a free port); unknown paths answer 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.received.append((self.path, self.headers.get("Host", "")))
            route = recorder.routes.get(self.path.split("?")[0])
            if route is None:
                self.send_error(404)
                return
            with suppress(OSError):  # the client hung up (a refused download)
                route(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    recorder = Recorder(f"http://127.0.0.1:{port}", port, dict(routes or {}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def body(data: bytes, content_type: str = "image/png", *, length: bool = True) -> Route:
    """Answer 200 with `data` (without Content-Length when `length` is False: read to EOF)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        if length:
            handler.send_header("Content-Length", str(len(data)))
        else:
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def redirect(location: str, status: int = 302) -> Route:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def status(code: int) -> Route:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def trickle(every: float = 0.2, *, in_headers: bool = False) -> Route:
    """Send one byte every `every` seconds for a minute: of the body, or of an endless header."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        if in_headers:
            handler.flush_headers()
            handler.wfile.write(b"X-Slow: ")
        else:
            handler.send_header("Content-Type", "image/png")
            handler.send_header("Content-Length", "1000000")
            handler.end_headers()
        for _ in range(int(60 / every)):
            handler.wfile.write(b"a")
            handler.wfile.flush()
            time.sleep(every)

    return answer
