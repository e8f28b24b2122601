"""`publisher bench`: the whole benchmark in one run, with a table of figures and targets.

1. Fresh `bench` database and Redis dbs; the four sandboxes, fault-free and unpaced (with
   `--channel-latency-ms`, each call to them takes that much longer, as a real channel's does).
2. Baseline: a bare Celery worker (`bench.baseline`) publishes N items to the four sandboxes.
3. Product: API, worker and beat; N items created, then published through the API with a few
   concurrent clients; publish → live on all four channels, from each delivery's `live_at`.
4. API latency: `--clients` concurrent clients create items back to back, then publish
   them in two ways, each on items of its own:
   a. at a stated load, after `--latency-warmup` seconds at that load that are not measured
      (each API process opens its connections and prepares its statements on first use):
      for `--requests` / `--publish-rate` seconds the clients together offer
      `--publish-rate` publishes a second (each client publishes one item at a time, after
      exponentially distributed pauses: Poisson arrivals), and latency counts from when
      each call was due. The table gives the offered and achieved rates, p50, p99 and
      max; the target applies here.
   b. back to back (a closed loop: each client calls again the moment it has its answer),
      `--requests` items: the capacity, in publishes a second, with p50 and p99. No target:
      in a closed loop latency is only the number of clients divided by the throughput
      (Little's law).
   c. as in a, with the worker and beat stopped: the API and its store alone at that load,
      nothing delivering on the same cores. No target: it shows how much of a's tail is the
      pipeline competing for the CPU.
5. The failed-deliveries query over `--rows` delivery rows, with and without a candidate index.

The worker's memory is sampled throughout 3 and 4, and the CPU each part of the system uses
over the measured part of 2 and 3 is read from `/proc` (`CpuMeter`). Targets: throughput
≥ 0.7 × baseline, publish p99 < 50 ms at the stated load, the failed query < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import baseline as baseline_mod
from bench.failed_query import CANDIDATE_INDEX_SQL, QueryTiming, measure
from bench.pipeline import (
    ApiClients,
    channel_latencies,
    item_latencies,
    throughput,
    wait_live,
)
from bench.procs import MemorySampler, cpu_seconds, processes, tree_cpu_seconds
from bench.stats import Figure, percentile, render_table
from bench.system import BenchSystem, Services, fresh_database, fresh_redis
from channels.registry import KINDS

RATIO_TARGET = 0.7
PUBLISH_P99_TARGET_MS = 50.0
QUERY_TARGET_MS = 100.0
# The product's WeChat adapter polls `freepublish/get` at most 100 times a day (docs/protocols.md).
WECHAT_POLLS_PER_DAY = 100


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="publisher bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--items", type=int, default=90, help="items per pipeline run (default 90)")
    p.add_argument("--warmup", type=int, default=5, help="items published before measuring")
    p.add_argument("--concurrency", type=int, default=4, help="worker processes, both runs")
    p.add_argument("--publishers", type=int, default=8, help="API clients publishing in 3")
    p.add_argument("--clients", type=int, default=50, help="concurrent API clients in 4")
    p.add_argument(
        "--requests",
        type=int,
        default=500,
        help="publishes in 4a (on average: its calls arrive at random) and in 4b",
    )
    p.add_argument(
        "--publish-rate",
        type=positive,
        default=10.0,
        help="publishes a second the clients offer together in 4a (default 10: far more\n"
        "than a city's departments publish, and a load the delivery pipeline sustains on\n"
        "2 cores; above what the pipeline sustains, every queue grows and the latency\n"
        "measures only the queue)",
    )
    p.add_argument(
        "--latency-warmup",
        type=float,
        default=5.0,
        help="seconds of publishing at --publish-rate before 4a, not measured: every API\n"
        "process opens its connections and prepares its statements (default 5)",
    )
    p.add_argument(
        "--channel-latency-ms",
        type=int,
        default=0,
        help="added by every sandbox to every call, in both runs (default 0: loopback\n"
        "sandboxes answer in about a millisecond, real channels in tens to hundreds)",
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="delivery rows for 5")
    p.add_argument("--failed-share", type=float, default=0.005, help="share of failed rows")
    p.add_argument(
        "--wechat-publish-delay",
        type=float,
        default=0.3,
        help="seconds the WeChat sandbox takes to publish (its default). At 0 its callback\n"
        "can arrive before the worker has recorded the publish id, and the delivery\n"
        "then waits for the 120 s poll",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="per pipeline run, seconds")
    p.add_argument("--skip", action="append", default=[], choices=["baseline", "latency", "query"])
    p.add_argument("--postgres", default=Services.postgres, help="server URL, no database")
    p.add_argument("--redis", default=Services.redis, help="server URL, no db number")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--keep", type=Path, default=None, help="keep logs in this directory")
    return p


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.items + args.warmup > WECHAT_POLLS_PER_DAY:
        print(
            f"note: more than {WECHAT_POLLS_PER_DAY} WeChat publishes need more freepublish/get "
            "polls than the adapter allows a day; the rest wait for tomorrow's budget",
            file=sys.stderr,
        )
    services = Services(postgres=args.postgres, redis=args.redis)
    var_dir = args.keep or Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    say(f"bench: logs in {var_dir}")
    database_url = fresh_database(services)
    fresh_redis(services)
    system = BenchSystem(var_dir, services, args.concurrency)
    results: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "channel_latency_ms": args.channel_latency_ms,
    }
    try:
        system.start_sandboxes(args.wechat_publish_delay, args.channel_latency_ms)
        if "baseline" not in args.skip:
            results["baseline"] = run_baseline(system, args)
        results["product"] = run_product(system, database_url, args)
        if "query" not in args.skip:
            system.procs.stop("worker")  # the store is filled under the API alone
            system.procs.stop("beat")  # (4c has stopped both already)
            say(f"query: filling {args.rows:,} delivery rows…")
            timing = measure(
                database_url,
                rows=args.rows,
                failed_share=args.failed_share,
                api=system.api,
                headers=system.headers,
            )
            results["query"] = query_summary(timing)
    except Exception:
        for name in system.procs.procs:
            print(f"--- {name}\n{system.procs.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        system.stop()
    figures = build_figures(results)
    print()
    print(render_table(figures))
    if "query" in results:
        print()
        print("failed-deliveries query plans (EXPLAIN ANALYZE, without the candidate index):")
        for name, plan in results["query"]["explain"].items():
            print(f"-- {name}\n{plan}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(f.passed is not False for f in figures) else 1


def say(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


# --- the runs ---------------------------------------------------------------------------------


def run_baseline(system: BenchSystem, args: argparse.Namespace) -> dict[str, Any]:
    worker = system.start_baseline()
    say(f"baseline: warming up with {args.warmup} items…")
    warm = baseline_mod.run_baseline(list(range(1, args.warmup + 1)), 120)
    if not warm.finished:
        raise RuntimeError(f"the baseline warm-up did not finish: {warm.errors[:3]}")
    numbers = list(range(1000, 1000 + args.items))
    say(f"baseline: {args.items} items × {len(KINDS)} channels…")
    with MemorySampler(worker) as memory:
        cpu = CpuMeter(system, ["baseline", "sandbox"])
        run = baseline_mod.run_baseline(numbers, args.timeout)
        used = cpu.used()
    system.procs.stop("baseline")
    if not run.finished:
        raise RuntimeError(f"the baseline did not finish: errors {run.errors[:3]}")
    summary = latency_summary(run.started, run.live)
    summary["cpu_ms_per_item"] = per_item(used, args.items)
    summary["worker_peak_rss_mb"] = memory.peak_mb
    summary["worker_hwm_sum_mb"] = memory.hwm_mb
    say(f"baseline: {summary['items_per_s']:.1f} items/s")
    return summary


def run_product(system: BenchSystem, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    worker = system.start_product()
    publishers = ApiClients(system.api, system.headers, args.publishers)
    summary: dict[str, Any] = {}
    with MemorySampler(worker) as memory:
        say(f"product: warming up with {args.warmup} items…")
        _, warm_ids = publishers.create_items(range(1, args.warmup + 1))
        publishers.publish(warm_ids)
        warm = wait_live(database_url, warm_ids, 180)
        if not warm.finished:
            raise RuntimeError(f"the product warm-up did not finish: {warm.pending}")
        numbers = list(range(1000, 1000 + args.items))
        _, ids = publishers.create_items(numbers)
        say(f"product: {args.items} items × {len(KINDS)} channels…")
        cpu = CpuMeter(system, ["worker", "api", "beat", "sandbox"])
        calls = publishers.publish(ids)
        live = wait_live(database_url, ids, args.timeout)
        used = cpu.used()
        summary.update(latency_summary(calls.started, live.live))
        summary["cpu_ms_per_item"] = per_item(used, args.items)
        summary["not_live"] = live.pending
        summary["publish_ms_p50"] = percentile(calls.latencies_ms, 50)
        say(f"product: {summary['items_per_s']:.1f} items/s; not live: {live.pending or 'none'}")
        if "latency" not in args.skip:
            summary.update(api_latency(system, args))
    summary["worker_peak_rss_mb"] = memory.peak_mb
    summary["worker_hwm_sum_mb"] = memory.hwm_mb
    summary["worker_processes"] = memory.processes
    return summary


def api_latency(system: BenchSystem, args: argparse.Namespace) -> dict[str, Any]:
    """Items created first; then published at the stated load (a), back to back (b), and at
    the stated load again with the worker and beat stopped (c), each on items of its own."""
    clients = ApiClients(system.api, system.headers, args.clients)

    def enough(seconds: float) -> int:  # Poisson arrivals: the mean, and room for 5 σ more
        mean = math.ceil(seconds * args.publish_rate)
        return mean + 5 * math.isqrt(mean) + 10

    seconds = args.requests / args.publish_rate
    warm_items, paced_items = enough(args.latency_warmup), enough(seconds)
    numbers = list(range(100_000, 100_000 + warm_items + 2 * paced_items + args.requests))
    say(f"api: {args.clients} clients create {len(numbers)} items back to back…")
    created, ids = clients.create_items(numbers)
    warm_ids, ids = ids[:warm_items], ids[warm_items:]
    paced_ids, alone_ids, closed_ids = (
        ids[:paced_items],
        ids[paced_items : 2 * paced_items],
        ids[2 * paced_items :],
    )
    if args.latency_warmup > 0:
        say(f"api: warming up, {args.latency_warmup:g} s at {args.publish_rate:g}/s…")
        clients.publish_paced(warm_ids, args.publish_rate, args.latency_warmup, seed=2)
    say(
        f"api: {args.clients} clients publish for {seconds:g} s at {args.publish_rate:g}/s "
        f"offered (about {args.requests} items)…"
    )
    paced = clients.publish_paced(paced_ids, args.publish_rate, seconds)
    say(f"api: {args.clients} clients publish {len(closed_ids)} back to back…")
    closed = clients.publish(closed_ids)
    say(f"api: the same {args.publish_rate:g}/s for {seconds:g} s, the worker and beat stopped…")
    system.procs.stop("worker")
    system.procs.stop("beat")
    alone = clients.publish_paced(alone_ids, args.publish_rate, seconds, seed=3)
    return {
        "api_clients": args.clients,
        "create_ms_p50": percentile(created.latencies_ms, 50),
        "create_ms_p99": percentile(created.latencies_ms, 99),
        "paced_offered_per_s": paced.offered_per_s,
        "paced_achieved_per_s": paced.calls.per_second,
        "paced_late_calls": paced.late,
        "paced_ms_p50": percentile(paced.calls.latencies_ms, 50),
        "paced_ms_p99": percentile(paced.calls.latencies_ms, 99),
        "paced_ms_max": max(paced.calls.latencies_ms),
        "closed_per_s": closed.per_second,
        "closed_ms_p50": percentile(closed.latencies_ms, 50),
        "closed_ms_p99": percentile(closed.latencies_ms, 99),
        "closed_ms_max": max(closed.latencies_ms),
        "alone_ms_p50": percentile(alone.calls.latencies_ms, 50),
        "alone_ms_p99": percentile(alone.calls.latencies_ms, 99),
        "alone_ms_max": max(alone.calls.latencies_ms),
    }


class CpuMeter:
    """CPU seconds each part of the system uses from its creation to `used()`, from `/proc`:
    each named child's process tree, every PostgreSQL and Redis server process (whoever they
    serve), and this process (the API clients, the polling of the store)."""

    SERVERS = ("postgres", "redis-server")

    def __init__(self, system: BenchSystem, children: Sequence[str]) -> None:
        self.system = system
        self.children = list(children)
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        table = processes()
        now = {name: tree_cpu_seconds(self.system.procs.pid(name), table) for name in self.children}
        now.update({server: cpu_seconds(server, table) for server in self.SERVERS})
        now["driver"] = time.process_time()
        return now

    def used(self) -> dict[str, float]:
        end = self._now()
        return {part: end[part] - self.start[part] for part in end}


def per_item(used: dict[str, float], items: int) -> dict[str, float]:
    """Milliseconds per item of each part, and of all of them (`all`)."""
    out = {part: seconds * 1000 / items for part, seconds in used.items()}
    out["all"] = sum(out.values())
    return out


def latency_summary(started: dict[int, float], live: dict[int, dict[str, float]]) -> dict[str, Any]:
    latencies = item_latencies(started, live)
    out: dict[str, Any] = {
        "items": len(started),
        "complete": len(latencies),
        "items_per_s": throughput(started, live),
        "live_s_p50": percentile(latencies, 50),
        "live_s_p95": percentile(latencies, 95),
        "live_s_max": max(latencies, default=math.nan),
    }
    for kind in KINDS:
        out[f"{kind}_s_p50"] = percentile(channel_latencies(started, live, kind), 50)
    return out


def query_summary(timing: QueryTiming) -> dict[str, Any]:
    return {
        "rows": timing.rows,
        "failed_rows": timing.failed_rows,
        "fill_s": timing.fill_seconds,
        "service_ms_median": timing.service_median_ms,
        "service_ms_max": max(timing.service_ms),
        "api_ms_median": percentile(timing.api_ms, 50),
        "plan_ms": timing.plan_ms,
        "with_index_ms_median": percentile(timing.with_index_ms, 50),
        "with_index_plan_ms": timing.with_index_plan_ms,
        "candidate_index": CANDIDATE_INDEX_SQL,
        "explain": timing.explain,
    }


# --- the table --------------------------------------------------------------------------------


def build_figures(results: dict[str, Any]) -> list[Figure]:
    figures: list[Figure] = [
        Figure("sandboxes: latency added to every call", results["channel_latency_ms"], "ms")
    ]
    ours, base = results.get("product", {}), results.get("baseline")
    if ours:
        figures += [
            Figure("pipeline: items/s (4 channels each)", ours["items_per_s"], "items/s"),
            Figure("pipeline: publish → live, p50", ours["live_s_p50"], "s"),
            Figure("pipeline: publish → live, p95", ours["live_s_p95"], "s"),
        ]
        figures += [Figure(f"  {k} live, p50", ours[f"{k}_s_p50"], "s") for k in KINDS]
    if base:
        ratio = ours["items_per_s"] / base["items_per_s"] if base["items_per_s"] else math.nan
        figures += [
            Figure("baseline: items/s", base["items_per_s"], "items/s"),
            Figure("baseline: publish → live, p50", base["live_s_p50"], "s"),
            Figure("baseline: publish → live, p95", base["live_s_p95"], "s"),
            Figure(
                "throughput ratio ours / baseline",
                ratio,
                "",
                f">= {RATIO_TARGET}",
                ratio >= RATIO_TARGET,
            ),
        ]
    for name, run in (("ours", ours), ("baseline", base)):
        figures += cpu_figures(name, (run or {}).get("cpu_ms_per_item", {}))
    if "paced_ms_p99" in ours:
        figures += api_figures(ours)
    if ours:
        figures.append(Figure("worker peak RSS (process tree)", ours["worker_peak_rss_mb"], "MB"))
    if base:
        figures.append(Figure("baseline worker peak RSS", base["worker_peak_rss_mb"], "MB"))
    query = results.get("query")
    if query:
        ms = query["service_ms_median"]
        figures += [
            Figure(
                f"failed-deliveries query, {query['rows']:,} rows",
                ms,
                "ms",
                f"< {QUERY_TARGET_MS:g} ms",
                ms < QUERY_TARGET_MS,
            ),
            Figure("  same, through GET /deliveries?state=failed", query["api_ms_median"], "ms"),
            Figure("  same, with the candidate index", query["with_index_ms_median"], "ms"),
        ]
    return figures


CPU_PARTS = {
    "worker": "worker processes",
    "baseline": "worker processes",
    "api": "API processes",
    "beat": "beat",
    "postgres": "PostgreSQL",
    "sandbox": "sandboxes",
    "redis-server": "Redis",
    "driver": "this benchmark (clients, polling)",
    "all": "all",
}


def cpu_figures(run: str, ms: dict[str, float]) -> list[Figure]:
    """Where the CPU of one run's measured part went, per item: on loopback both runs are
    bound by CPU, so this is what the throughput ratio is made of."""
    return [Figure(f"CPU per item, {run}: {CPU_PARTS[part]}", ms[part], "ms") for part in ms]


def api_figures(ours: dict[str, Any]) -> list[Figure]:
    clients, p99 = ours["api_clients"], ours["paced_ms_p99"]
    create = f"API POST /items, {clients} clients back to back"
    paced = f"API publish, {clients} clients at {ours['paced_offered_per_s']:g}/s offered"
    closed = f"API publish, {clients} clients back to back (capacity)"
    return [
        Figure(f"{create}, p50", ours["create_ms_p50"], "ms"),
        Figure(f"{create}, p99", ours["create_ms_p99"], "ms"),
        Figure(f"{paced}: achieved", ours["paced_achieved_per_s"], "/s"),
        Figure(f"{paced}, p50", ours["paced_ms_p50"], "ms"),
        Figure(
            f"{paced}, p99",
            p99,
            "ms",
            f"< {PUBLISH_P99_TARGET_MS:g} ms",
            p99 < PUBLISH_P99_TARGET_MS,
        ),
        Figure(f"{paced}, max", ours["paced_ms_max"], "ms"),
        # Calls whose client was still waiting for its previous answer when they were due
        # (their latency includes that wait).
        Figure(f"{paced}: calls sent late", ours["paced_late_calls"], ""),
        Figure(f"{closed}: publishes", ours["closed_per_s"], "/s"),
        Figure(f"{closed}, p50", ours["closed_ms_p50"], "ms"),
        Figure(f"{closed}, p99", ours["closed_ms_p99"], "ms"),
        # The same load as the target's, nothing delivering on the same cores: the API alone.
        Figure(f"{paced}, worker stopped, p50", ours["alone_ms_p50"], "ms"),
        Figure(f"{paced}, worker stopped, p99", ours["alone_ms_p99"], "ms"),
        Figure(f"{paced}, worker stopped, max", ours["alone_ms_max"], "ms"),
    ]


if __name__ == "__main__":
    sys.exit(main())
