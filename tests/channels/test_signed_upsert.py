"""What the website and catalogue share (`channels.signed_upsert`): paths keyed by OUR id.

A real CMS answers a PUT with its own `id` (here 4711), which is not the key of the protocol's
paths (docs/protocols.md). The tiny server below speaks the protocol, checks the signature,
and answers that foreign id: every GET and DELETE must still go to our key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from channels.base import Publication, Remote
from channels.catalogue import CatalogueChannel, entry_payload
from channels.signed_upsert import SignedUpsertChannel
from channels.signing import verify
from channels.website import WebsiteChannel, article_payload
from tests.contract.harnesses import SANDBOX_APP_ID, SANDBOX_SECRET
from tests.support import sample_publication, serve_in_thread

SERVER_ID = 4711


@dataclass
class ForeignIdServer:
    url: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[ForeignIdServer]:
    app = FastAPI()
    holder: list[ForeignIdServer] = []

    @app.api_route("/api/{table}/{key:path}", methods=["PUT", "GET", "DELETE"])
    async def record(table: str, key: str, request: Request) -> Response:
        body = await request.body()
        refused = verify(
            {SANDBOX_APP_ID: SANDBOX_SECRET},
            dict(request.headers),
            request.method,
            request.url.path,
            body,
        )
        if refused:
            return JSONResponse({"code": "bad_signature", "message": refused}, 401)
        state = holder[0]
        state.seen.append((request.method, request.url.path))
        path = f"{table}/{key}"
        if request.method == "PUT":
            state.records[path] = {**await request.json(), "live": True}
            answer = {"id": SERVER_ID, "url": f"{state.url}/pages/{SERVER_ID}.html"}
            return JSONResponse({**answer, "status": "published"}, 201)
        found = state.records.get(path)
        if found is None or not found["live"]:
            return JSONResponse({"code": "not_found", "message": "无此记录"}, 404)
        if request.method == "DELETE":
            found["live"] = False
            return Response(status_code=204)
        answer = {"id": SERVER_ID, "url": f"{state.url}/pages/{SERVER_ID}.html"}
        return JSONResponse({**answer, "content_hash": found["content_hash"]})

    with serve_in_thread(app) as url:
        holder.append(ForeignIdServer(url))
        yield holder[0]


CHANNELS: list[tuple[type[SignedUpsertChannel], str]] = [
    (WebsiteChannel, "/api/articles/item-42"),
    (CatalogueChannel, "/api/catalogue/733099896/2026-00042"),
]


@pytest.mark.parametrize(("channel_class", "path"), CHANNELS)
def test_every_path_is_keyed_by_our_id_not_the_servers(
    server: ForeignIdServer, channel_class: type[SignedUpsertChannel], path: str
) -> None:
    channel = channel_class(server.url, SANDBOX_APP_ID, SANDBOX_SECRET, timeout=2)
    pub = sample_publication()

    receipt = channel.create(pub)
    recorded = Remote(receipt.remote_id, receipt.url, receipt.state)
    found = channel.lookup(pub, recorded)
    channel.delete(recorded)
    gone = channel.lookup(pub, recorded)

    assert receipt.remote_id == path.removeprefix("/api/articles/").removeprefix("/api/catalogue/")
    assert receipt.state["server_id"] == str(SERVER_ID)
    assert found is not None and found.remote_id == receipt.remote_id
    assert found.content_hash == pub.content_hash
    assert gone is None
    assert server.seen == [("PUT", path), ("GET", path), ("DELETE", path), ("GET", path)]


@pytest.mark.parametrize(("channel_class", "path"), CHANNELS)
def test_a_remote_recorded_with_the_servers_id_is_still_found_by_our_key(
    server: ForeignIdServer, channel_class: type[SignedUpsertChannel], path: str
) -> None:
    # Deliveries recorded before the fix hold the server's id as remote id.
    channel = channel_class(server.url, SANDBOX_APP_ID, SANDBOX_SECRET, timeout=2)
    pub = sample_publication()
    channel.create(pub)

    found = channel.lookup(pub, Remote(str(SERVER_ID), None, {"status": "published"}))

    assert found is not None
    assert server.seen[-1] == ("GET", path)


def publication_for_preview() -> Publication:
    return sample_publication(title="关于<临时救助>的公示")


@pytest.mark.parametrize(
    ("channel_class", "path", "payload"),
    [
        (WebsiteChannel, "/api/articles/item-42", article_payload),
        (CatalogueChannel, "/api/catalogue/733099896/2026-00042", entry_payload),
    ],
)
def test_preview_is_the_request_a_publish_would_send_without_sending_it(
    server: ForeignIdServer,
    channel_class: type[SignedUpsertChannel],
    path: str,
    payload: Any,
) -> None:
    channel = channel_class(server.url, SANDBOX_APP_ID, "a-secret-never-shown", timeout=2)
    pub = publication_for_preview()

    shown = channel.preview(pub)

    assert shown == {"method": "PUT", "path": path, "body": payload(pub)}
    assert "a-secret-never-shown" not in repr(shown)
    assert server.seen == []
