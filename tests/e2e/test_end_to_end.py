"""Publish, edit and retract through real processes, on the embedded default and on
PostgreSQL + Redis; and a worker killed with SIGKILL mid-delivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from tests.e2e.system import System, wait_for
from tests.support import fresh_postgres, fresh_redis

ITEM = {
    "title": "松山湖2026年度残疾人两项补贴发放名单公示",
    "summary": "公示困难残疾人生活补贴和重度残疾人护理补贴的发放对象。",
    "body_html": "<p>经审核，共有<strong>58</strong>名残疾人符合补贴条件。</p>"
    "<script>alert('x')</script>",
    "domain": "welfare",
    "department": "sgj",
    "formed_on": date(2026, 11, 16).isoformat(),
    "keywords": ["残疾人", "补贴"],
    "channels": ["website", "catalogue"],
}


@pytest.fixture(params=["embedded", "services"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    extra: dict[str, str] = {}
    if request.param == "services":
        extra = {"PUBLISHER_DATABASE_URL": fresh_postgres(), **fresh_redis().env()}
    system = System(tmp_path, extra)
    try:
        system.start_all()
        yield system
    finally:
        system.stop()


def test_publish_edit_retract_reach_the_public_pages(system: System) -> None:
    # The worker and its pool (2 processes) yield the CPU to the API: PUBLISHER_WORKER_NICE,
    # default 10, added to the niceness they were started with (the API's).
    (api,) = system.niceness("api")
    wait_for(
        lambda: (
            system.niceness("worker") == {min(19, api + 10)} and system.group_size("worker") >= 3
        ),
        60,
        "the worker and its pool to run at a lower CPU priority",
        system,
    )
    item = system.call("POST", "/items", json=ITEM)
    system.review(item["id"])
    system.call("POST", f"/items/{item['id']}/publish")
    live = system.wait_states(item["id"], "live")
    page = requests.get(live["website"]["url"], timeout=5).text
    assert "残疾人两项补贴发放名单公示" in page and "alert(" not in page
    entry = requests.get(live["catalogue"]["url"], timeout=5).text
    assert live["website"]["url"] in entry
    index_no = system.call("GET", f"/items/{item['id']}")["index_no"]
    assert index_no == f"733099896/{date.today().year}-00001" and index_no in entry
    listing = requests.get(
        f"{system.sandbox['catalogue']}/733099896/zwgkList.shtml?catecode=0900", timeout=5
    ).text
    assert index_no in listing

    system.call("PATCH", f"/items/{item['id']}", json={"title": "残疾人两项补贴发放名单（更正）"})
    assert "（更正）" not in requests.get(live["website"]["url"], timeout=5).text  # held
    system.review(item["id"])  # the edit goes out once approved and published again
    system.call("POST", f"/items/{item['id']}/publish")
    wait_for(
        lambda: "（更正）" in requests.get(live["website"]["url"], timeout=5).text,
        60,
        "the website to show the edit",
        system,
    )
    system.wait_states(item["id"], "live")

    system.call("POST", f"/items/{item['id']}/retract")
    system.wait_states(item["id"], "withdrawn")
    assert requests.get(live["website"]["url"], timeout=5).status_code == 404
    assert (
        index_no
        not in requests.get(
            f"{system.sandbox['catalogue']}/733099896/zwgkList.shtml?catecode=0900", timeout=5
        ).text
    )


def test_worker_killed_mid_delivery_leaves_the_item_live_once(system: System) -> None:
    # Every website write now takes 3 s, so the worker is inside the call when it is killed.
    system.faults("website", latency_ms=3000)
    item = system.call("POST", "/items", json={**ITEM, "channels": ["website"]})
    system.review(item["id"])
    system.call("POST", f"/items/{item['id']}/publish")
    wait_for(
        lambda: system.inspect("website")["counters"].get("calls", 0) >= 1,
        30,
        "the website call to start",
        system,
    )
    system.kill("worker")
    time.sleep(3.5)  # the sandbox finishes the write the dead worker asked for
    system.faults("website", latency_ms=0)
    system.start_worker()
    live = system.wait_states(item["id"], "live", timeout=90)
    state = system.inspect("website")
    live_articles = [
        a for a in state["records"]["articles"].values() if a.get("status") == "published"
    ]
    assert len(live_articles) == 1
    assert state["counters"].get("creates") == 1
    attempts = system.call("GET", f"/items/{item['id']}/attempts")["attempts"]
    history = [(a["action"], a["outcome"]) for a in reversed(attempts)]  # oldest first
    # The dead worker's call is marked abandoned; the next worker looks before it writes.
    assert history == [("create", "abandoned"), ("lookup", "ok")]
    assert live["website"]["url"]
