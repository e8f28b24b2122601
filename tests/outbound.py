"""Helpers of the outbound-fetch and pixel-bomb tests (issue 12): a loopback HTTP server that
records every request it receives, and a small PNG that declares huge dimensions."""

from __future__ import annotations

import io
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for the DNS name `name` and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


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
def recording_server(
    routes: dict[str, Route] | None = None, *, tls: tuple[Path, Path] | None = None
) -> Iterator[Recorder]:
    """A real HTTP server on 127.0.0.1 (a free port); unknown paths answer 404. With `tls`
    (certificate and key files), HTTPS."""

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
    scheme = "http"
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    recorder = Recorder(f"{scheme}://127.0.0.1:{port}", port, dict(routes or {}))
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
