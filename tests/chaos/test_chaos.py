"""Chaos: several workers on PostgreSQL + Redis, every sandbox failing 30 % of calls, slow, and
hanging after 10 % of its writes — while workers are killed with SIGKILL, the cluster's Redis
keys are deleted, and the store's connections are cut.

Each scenario publishes a batch through the API, edits some items while they are being
delivered and retracts others, and inflicts its disaster meanwhile. Then the faults stop and,
within a bound, every delivery must settle (live or withdrawn; a `failed` one is a finding).
The sandboxes' inspection endpoints must then show every published item exactly once on every
channel at its latest revision and every retracted item nowhere, and the store (`GET
/items/{id}`) must agree with them. Every scenario checks every item published so far.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from tests.chaos.cluster import FAULTS, KINDS, NO_FAULTS, WORKERS, ChaosCluster

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

SETTLE_SECONDS = 90
Chaos = Callable[[ChaosCluster, threading.Event], None]


# --- the scenarios ---------------------------------------------------------------------------


def kill_workers(cluster: ChaosCluster, stop: threading.Event) -> None:
    """Every 1-2 s, SIGKILL a random worker (with its pool children) and restart it."""
    rng = random.Random()
    while not stop.wait(rng.uniform(1.0, 2.0)):
        cluster.kill_worker(rng.randrange(WORKERS))


def restart_redis(cluster: ChaosCluster, stop: threading.Event) -> None:
    """Every few seconds, drop every connection of the cluster to Redis and delete its keys:
    queued messages, the shared token and rate state are lost; the sweeper must find the
    work again in the store."""
    while not stop.wait(3.5):
        cluster.restart_broker()


def cut_database(cluster: ChaosCluster, stop: threading.Event) -> None:
    """Terminate every connection to the store (API, workers) every few seconds."""
    cluster.cutting_database = True
    try:
        while not stop.wait(2.5):
            cluster.cut_database()
        time.sleep(0.5)  # the API's answers to requests caught by the last cut
    finally:
        cluster.cutting_database = False


def test_workers_killed_repeatedly_during_deliveries(cluster: ChaosCluster) -> None:
    run_scenario(cluster, "A", 12, kill_workers, seconds=20)


def test_redis_restarted_and_flushed_during_deliveries(cluster: ChaosCluster) -> None:
    run_scenario(cluster, "B", 10, restart_redis, seconds=15)


def test_database_connections_cut_during_deliveries(cluster: ChaosCluster) -> None:
    run_scenario(cluster, "C", 10, cut_database, seconds=15)


def test_everything_at_once(cluster: ChaosCluster) -> None:
    def everything(cluster: ChaosCluster, stop: threading.Event) -> None:
        crashed: list[BaseException] = []

        def inflict(chaos: Chaos) -> None:
            try:
                chaos(cluster, stop)
            except BaseException as exc:
                crashed.append(exc)

        threads = [
            threading.Thread(target=inflict, args=(chaos,), daemon=True)
            for chaos in (kill_workers, restart_redis, cut_database)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if crashed:
            raise crashed[0]

    run_scenario(cluster, "D", 12, everything, seconds=20)


# --- one scenario ----------------------------------------------------------------------------


def run_scenario(
    cluster: ChaosCluster, name: str, count: int, chaos: Chaos, *, seconds: float
) -> None:
    cluster.note(f"scenario {name}: {chaos.__name__}")
    first_event = len(cluster.events)
    ids = [publish(cluster, f"演练{name}-{n:02d}号困难群众救助资金公示") for n in range(count)]
    cluster.set_faults(FAULTS)
    stop = threading.Event()
    crashed: list[BaseException] = []

    def inflict() -> None:
        try:
            chaos(cluster, stop)
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=inflict, name=f"chaos-{name}", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        time.sleep(1.0)
        for item_id in ids[::3]:  # edited while their first revision is on its way
            edit(cluster, item_id, 1)
        time.sleep(2.0)
        for item_id in ids[1::4]:  # retracted while being published
            retract(cluster, item_id)
        time.sleep(2.0)
        for item_id in ids[::6]:  # a second edit, maybe over a half-done first one
            edit(cluster, item_id, 2)
        time.sleep(max(0.0, seconds - 2.0 - (time.monotonic() - started)))
        retract(cluster, [i for i in ids if i not in ids[1::4]][-1])  # most likely live by now
        time.sleep(2.0)
    finally:
        stop.set()
        thread.join(60)
    assert not crashed, f"the chaos thread failed: {crashed[0]!r}"
    cluster.set_faults(NO_FAULTS)
    settle(cluster)
    problems, concerned = check_channels_agree(cluster)
    assert not problems, failure_report(cluster, "the channels do not agree", problems, concerned)
    assert not cluster.dead(), failure_report(
        cluster, "processes stopped on their own", [", ".join(cluster.dead())], []
    )
    print("\n".join(cluster.events[first_event:]))  # shown with -rP: what this scenario did


# --- API actions (safe to repeat across a cut database connection) ---------------------------


def publish(cluster: ChaosCluster, title: str) -> int:
    body = {
        "title": title,
        "summary": "公示本季度临时救助资金发放对象、金额及审批情况，接受社会监督。",
        "body_html": f"<p>{title}。</p><p>公示期间如有异议，请致电社管局。</p>",
        "domain": "welfare",
        "department": "sgj",
        "formed_on": date.today().isoformat(),
        "keywords": ["救助", "公示"],
    }
    item = cluster.call("POST", "/items", json=body)
    cluster.call("POST", f"/items/{item['id']}/publish")
    return int(item["id"])


def edit(cluster: ChaosCluster, item_id: int, number: int) -> None:
    current = cluster.item(item_id)["revision"]["title"]
    title = f"{current.split('（')[0]}（修订{number}）"
    cluster.call_until_ok(
        "PATCH",
        f"/items/{item_id}",
        applied=lambda: cluster.item(item_id)["revision"]["title"] == title,
        json={"title": title},
    )
    cluster.note(f"edited item {item_id}: {title}")


def retract(cluster: ChaosCluster, item_id: int) -> None:
    cluster.call_until_ok(
        "POST",
        f"/items/{item_id}/retract",
        applied=lambda: cluster.item(item_id)["status"] == "retracted",
    )
    cluster.note(f"retracted item {item_id}")


# --- settling --------------------------------------------------------------------------------


def is_settled(d: dict[str, Any]) -> bool:
    if not d["desired_present"]:
        return bool(d["state"] == "withdrawn")
    return bool(d["state"] == "live" and d["applied_revision_id"] == d["desired_revision_id"])


def settle(cluster: ChaosCluster) -> None:
    """Wait until every delivery is live at its desired revision or withdrawn.

    A `failed` delivery, or one still open after `SETTLE_SECONDS`, is a finding: the report
    carries its attempts, the sandboxes' records and the logs.
    """
    cluster.note("faults off; settling")
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        deliveries = cluster.all_deliveries()
        failed = [d for d in deliveries if d["state"] == "failed"]
        assert not failed, failure_report(
            cluster, "deliveries failed", [summary(d) for d in failed], failed
        )
        open_ = [d for d in deliveries if not is_settled(d)]
        publishing = [
            job
            for job in cluster.inspect("wechat")["records"]["publishes"].values()
            if job["status"] == 1
        ]
        if not open_ and not publishing:
            cluster.note("settled")
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                failure_report(
                    cluster,
                    f"not settled after {SETTLE_SECONDS}s",
                    [summary(d) for d in open_] + [f"wechat publish job {publishing}"],
                    open_,
                )
            )
        time.sleep(1.0)


# --- the verdict -----------------------------------------------------------------------------


def check_channels_agree(cluster: ChaosCluster) -> tuple[list[str], list[dict[str, Any]]]:
    """Every problem found comparing the store with what the sandboxes hold."""
    holdings = cluster.holdings()
    listing = cluster.call_until_ok("GET", "/items", params={"limit": 500})["results"]
    items = [cluster.item(int(entry["id"])) for entry in listing]
    problems: list[str] = []
    concerned: list[dict[str, Any]] = []  # the deliveries of the items with a problem
    live_items = 0
    for item in items:
        copies = copies_of(cluster, holdings, item)
        if item["status"] == "retracted":
            found = check_retracted(item, copies)
        else:
            live_items += 1
            found = check_live(cluster, item, copies)
        problems += found
        concerned += item["deliveries"] if found else []
    # Nothing live on a channel that the store does not know of.
    counts = live_counts(holdings, cluster.weibo_history)
    for kind, held in counts.items():
        if held != live_items:
            problems.append(f"{kind} holds {held} live copies; the store has {live_items} items")
    return problems, concerned


def copies_of(
    cluster: ChaosCluster, holdings: dict[str, dict[str, Any]], item: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The live copies of `item` on each channel, found by its website URL."""
    url = cluster.website_url(item["id"])
    records = {kind: holdings[kind]["records"] for kind in KINDS}
    return {
        "website": [
            a
            for a in records["website"].get("articles", {}).values()
            if a["id"] == f"item-{item['id']}" and a["status"] == "published"
        ],
        "catalogue": [
            e
            for e in records["catalogue"].get("entries", {}).values()
            if (e["url"] == url or e["id"] == item["index_no"]) and e["status"] == "published"
        ],
        "wechat": [
            {**news, "article_id": article["article_id"]}
            for article in records["wechat"]["articles"].values()
            for news in article["news_item"]
            if news.get("content_source_url") == url and not news["is_deleted"]
        ],
        "weibo": [
            s
            for s in records["weibo"]["statuses"].values()
            if url in s["text"] and not s["deleted"]
        ],
    }


def live_counts(holdings: dict[str, dict[str, Any]], weibo_history: set[str]) -> dict[str, int]:
    """Live copies on each channel, but for the Weibo account's posts from before the run."""
    records = {kind: holdings[kind]["records"] for kind in KINDS}
    return {
        "website": sum(
            a["status"] == "published" for a in records["website"].get("articles", {}).values()
        ),
        "catalogue": sum(
            e["status"] == "published" for e in records["catalogue"].get("entries", {}).values()
        ),
        "wechat": sum(
            not news["is_deleted"]
            for article in records["wechat"]["articles"].values()
            for news in article["news_item"]
        ),
        "weibo": sum(
            not s["deleted"] and idstr not in weibo_history
            for idstr, s in records["weibo"]["statuses"].items()
        ),
    }


def check_retracted(item: dict[str, Any], copies: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    where = f"item {item['id']} (retracted)"
    for kind, found in copies.items():
        if found:
            problems.append(f"{where}: {len(found)} live copies on {kind}")
    for d in item["deliveries"]:
        if d["state"] != "withdrawn" or d["remote_id"] is not None:
            problems.append(f"{where}: {d['channel']} delivery is {summary(d)}")
    return problems


def check_live(
    cluster: ChaosCluster, item: dict[str, Any], copies: dict[str, list[dict[str, Any]]]
) -> list[str]:
    where = f"item {item['id']} ({item['revision']['title']})"
    latest = item["revision"]
    deliveries = {d["channel"]: d for d in item["deliveries"]}
    problems = []
    if sorted(deliveries) != sorted(KINDS):
        problems.append(f"{where}: deliveries on {sorted(deliveries)}, expected {sorted(KINDS)}")
    for kind in KINDS:
        found = copies[kind]
        if len(found) != 1:
            problems.append(f"{where}: {len(found)} live copies on {kind}, expected exactly 1")
        d = deliveries.get(kind)
        if d is None:
            continue
        if d["state"] != "live" or d["applied_revision_id"] != latest["id"]:
            problems.append(f"{where}: {kind} delivery is {summary(d)}, latest revision {latest}")
        if len(found) != 1:
            continue
        copy = found[0]
        if kind in ("website", "catalogue"):
            if copy["content_hash"] != latest["content_hash"]:
                problems.append(f"{where}: {kind} holds an older revision ({copy['title']})")
            remote_id = copy["id"]
        elif kind == "wechat":
            if copy["title"] != latest["title"]:
                problems.append(f"{where}: WeChat shows the title {copy['title']!r}")
            remote_id = copy["article_id"]
            if d["url"] != copy["url"]:
                problems.append(f"{where}: store has WeChat URL {d['url']}, WeChat {copy['url']}")
        else:
            if f"【{latest['title']}】" not in copy["text"]:
                problems.append(f"{where}: Weibo shows {copy['text']!r}")
            remote_id = copy["idstr"]
        if d["remote_id"] != remote_id:
            problems.append(f"{where}: store says {kind} id {d['remote_id']}, {kind} {remote_id}")
    if deliveries.get("website", {}).get("url") != cluster.website_url(item["id"]):
        problems.append(f"{where}: the store's website URL is {deliveries.get('website')}")
    catalogue = copies["catalogue"]
    if len(catalogue) == 1 and catalogue[0]["id"] != item["index_no"]:
        problems.append(f"{where}: catalogue entry {catalogue[0]['id']}, store {item['index_no']}")
    return problems


# --- diagnostics -----------------------------------------------------------------------------


def summary(d: dict[str, Any]) -> str:
    error = d.get("last_error") or {}
    return (
        f"delivery {d['id']} item {d['item_id']} {d['channel']}: {d['state']} "
        f"desired={'present' if d['desired_present'] else 'absent'}@{d['desired_revision_id']} "
        f"applied={d['applied_revision_id']} remote={d['remote_id']} attempts={d['attempts']} "
        f"error={error.get('kind')}/{error.get('code')} {error.get('message')!r} "
        f"next={d['next_attempt_at']} ({d.get('explanation')})"
    )


def failure_report(
    cluster: ChaosCluster, headline: str, problems: list[str], deliveries: list[dict[str, Any]]
) -> str:
    """Problems, then the attempts of the deliveries concerned, what the sandboxes hold of
    their items, what was done to the cluster, and the processes' log tails."""
    lines = [headline, *problems, "", "--- attempts"]
    for d in deliveries[:12]:
        lines.append(summary(d))
        for a in cluster.delivery_detail(d["id"])["attempt_log"][::-1]:
            error = a["error"] or {}
            lines.append(
                f"   #{a['number']} {a['action']} rev={a['revision_id']} {a['outcome']} "
                f"{a['duration_ms']}ms {error.get('kind')}/{error.get('code')} "
                f"{error.get('message')!r} by {a['worker']}"
            )
    item_ids = sorted({int(d["item_id"]) for d in deliveries[:12]})
    holdings = cluster.holdings()
    lines.append("--- sandbox records of those items")
    for item_id in item_ids:
        copies = copies_of(cluster, holdings, {"id": item_id, "index_no": None})
        lines.append(f"item {item_id}: {json.dumps(brief(copies), ensure_ascii=False)}")
    lines.append("--- sandbox counters")
    lines += [f"{kind}: {holdings[kind]['counters']}" for kind in KINDS]
    lines.append("--- what was done to the cluster")
    lines += cluster.events[-60:]
    lines.append("--- logs")
    lines.append(cluster.logs())
    return "\n".join(lines)


def brief(copies: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The records without their bodies."""
    skip = {"content_html", "content", "summary", "keywords", "attachments"}
    return {
        kind: [{k: v for k, v in record.items() if k not in skip} for record in found]
        for kind, found in copies.items()
    }
