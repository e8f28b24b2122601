"""Thumb materials (issue 13, item 3): one permanent thumb per distinct cover, whichever items
show it, and deleted once the last article showing it is retracted; the account's cap."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image

from channels import wechat_render as render
from channels.base import Publication, Remote
from channels.errors import Permanent
from channels.fetch import FetchPolicy
from channels.wechat import WeChatChannel
from channels.wechat_materials import thumb_key
from tests.channels.test_wechat import settled
from tests.contract.harness_wechat import make
from tests.contract.harnesses import ContractHarness
from tests.support import sample_publication, serve_in_thread

COLOURS = {"red": (200, 10, 10), "green": (10, 160, 40), "blue": (20, 40, 200)}


@pytest.fixture
def covers() -> Iterator[str]:
    """A site serving one PNG per colour at /<colour>.png."""
    app = FastAPI()

    @app.get("/{colour}.png")
    def cover(colour: str) -> Response:
        image = io.BytesIO()
        Image.new("RGB", (470, 200), COLOURS[colour]).save(image, "PNG")
        return Response(image.getvalue(), media_type="image/png")

    with serve_in_thread(app) as host:
        yield host


@pytest.fixture
def harness(covers: str) -> Iterator[ContractHarness]:
    with make(fetch=FetchPolicy(allowed_origins=(covers,))) as made:
        yield made


def channel_of(h: ContractHarness) -> WeChatChannel:
    assert isinstance(h.channel, WeChatChannel)
    return h.channel


def thumbs(h: ContractHarness) -> dict[str, Any]:
    materials: dict[str, Any] = h.sandbox.inspect()["records"]["materials"]
    return {media_id: m for media_id, m in materials.items() if m["type"] == "thumb"}


def item(n: int, cover: str) -> Publication:
    return sample_publication(
        item_id=n,
        external_id=f"item-{n}",
        cover_image_url=cover,
        website_url=f"http://127.0.0.1:8101/articles/item-{n}.html",
    )


def test_a_cover_shared_by_fifty_items_is_one_thumb(harness: ContractHarness, covers: str) -> None:
    channel = channel_of(harness)

    receipts = [channel.create(item(n, f"{covers}/red.png")) for n in range(1, 51)]

    held = thumbs(harness)
    assert len(held) == 1, "one cover, one permanent material"
    [media_id] = held
    assert {r.state["thumbs"][0] for r in receipts} == {media_id}
    drafts = harness.sandbox.inspect()["records"]["drafts"].values()
    assert {d["articles"][0]["thumb_media_id"] for d in drafts} == {media_id}
    assert channel.health()["materials"] == {"held": 1, "cap": 1000}


def test_a_thumb_is_deleted_with_the_last_article_showing_it(
    harness: ContractHarness, covers: str
) -> None:
    channel = channel_of(harness)
    pubs = [item(1, f"{covers}/red.png"), item(2, f"{covers}/red.png")]
    other = item(3, f"{covers}/green.png")
    done = [settled(channel, pub, channel.create(pub)) for pub in [*pubs, other]]
    remotes = [Remote(r.remote_id, r.url, r.state) for r in done]
    red = done[0].state["thumbs"][0]

    channel.delete(remotes[0])
    after_first = set(thumbs(harness))
    channel.delete(remotes[1])
    after_second = set(thumbs(harness))
    channel.delete(remotes[1])  # a repeated retraction finds nothing left to do

    assert red in after_first, "the second item still shows the red cover"
    assert red not in after_second and len(after_second) == 1, "only the green one is left"
    assert harness.sandbox.inspect()["counters"]["materials_deleted"] == 1
    assert channel.health()["materials"]["held"] == 1
    again = settled(channel, pubs[0], channel.create(pubs[0]))
    assert again.state["thumbs"][0] != red, "a deleted thumb is never reused"


def test_past_the_accounts_material_cap_wechat_refuses_the_upload(
    harness: ContractHarness, covers: str
) -> None:
    channel = channel_of(harness)
    requests.post(f"{harness.sandbox.url}/_sandbox/wechat", json={"material_cap": 2}, timeout=5)
    channel.create(item(1, f"{covers}/red.png"))
    channel.create(item(2, f"{covers}/green.png"))
    channel.create(item(3, f"{covers}/red.png"))  # reuses its thumb: no upload

    with pytest.raises(Permanent) as refused:
        channel.create(item(4, f"{covers}/blue.png"))

    assert refused.value.code == "45034"
    assert len(thumbs(harness)) == 2


def test_a_lost_mapping_costs_an_upload_never_a_deleted_thumb(
    harness: ContractHarness, covers: str
) -> None:
    channel = channel_of(harness)
    cover = render.cover_jpeg(requests.get(f"{covers}/red.png", timeout=5).content)
    first = settled(
        channel, item(1, f"{covers}/red.png"), channel.create(item(1, f"{covers}/red.png"))
    )
    channel.shared.delete(thumb_key(cover))  # as if the shared store had been flushed

    second = channel.create(item(2, f"{covers}/red.png"))
    channel.delete(Remote(first.remote_id, first.url, first.state))
    third = channel.create(item(3, f"{covers}/red.png"))

    old, new = first.state["thumbs"][0], second.state["thumbs"][0]
    assert old != new, "uploaded again"
    assert set(thumbs(harness)) == {new}, "the first item's thumb went with it"
    assert third.state["thumbs"] == [new], "the mapping names the thumb that is still there"
