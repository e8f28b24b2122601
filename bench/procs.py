"""Child processes of the benchmark, and what they cost: ports, start/stop, resident memory.

Each child runs in its own process group, so stopping it takes a Celery worker's pool
processes with it. Memory is read from `/proc` (no psutil): the resident set of a process
tree, sampled while the benchmark runs, and each process's own high-water mark (`VmHWM`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until `url` answers below 500. Raises `RuntimeError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


class Processes:
    """Named children sharing one environment; logs go to `log_dir/<name>.log`."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], nice: int = 0) -> int:
        """Start `argv` as `name`, `nice` added to its niceness (and its children's)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                ["nice", "-n", str(nice), *argv] if nice else list(argv),
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc.pid

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def check_alive(self) -> None:
        """Raise `RuntimeError` naming any child that has exited."""
        dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"stopped unexpectedly: {', '.join(dead)} (logs: {self.log_dir})")

    def stop(self, name: str, timeout: float = 15.0) -> None:
        """Stop `name` (SIGTERM, then SIGKILL after `timeout`); nothing if it is not running."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# --- memory ------------------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


Table = dict[int, tuple[str, list[str]]]  # pid → command name, `/proc/<pid>/stat` fields


def processes() -> Table:
    """Every running process, read once from `/proc/*/stat`: its command name and its fields
    from the third (the state) on, so `fields[1]` is the parent and `fields[11:13]` the CPU."""
    table: Table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        table[int(entry.name)] = (name, rest.split())
    return table


def process_tree(root: int, table: Table | None = None) -> list[int]:
    """`root` and every descendant, from each process's parent."""
    children: dict[int, list[int]] = {}
    for pid, (_, fields) in (table or processes()).items():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def cpu_seconds(command: str, table: Table | None = None) -> float:
    """User + system CPU of every running process whose command name is `command`: e.g. all
    of PostgreSQL's backends and helpers, whoever started them."""
    return sum(_cpu(fields) for name, fields in (table or processes()).values() if name == command)


def tree_cpu_seconds(root: int, table: Table | None = None) -> float:
    """User + system CPU of `root` and its running descendants."""
    table = table or processes()
    return sum(_cpu(table[pid][1]) for pid in process_tree(root, table) if pid in table)


class MemorySampler:
    """Samples the resident set of a process tree on a thread; `peak_mb` is the largest sum.

    `hwm_mb` adds each process's own peak (`VmHWM`) as last seen: an upper bound of the
    tree's peak that a short spike between samples cannot escape.

    The tree itself is found again every `rescan` samples only: walking all of `/proc` costs
    some 7 ms of CPU, taken from the API clients timed in the same process.
    """

    def __init__(self, root: int, interval: float = 0.25, rescan: int = 20) -> None:
        self.root = root
        self.interval = interval
        self.rescan = rescan
        self._tree: list[int] = []
        self._samples = 0
        self.peak_kb = 0
        self.hwm_kb: dict[int, int] = {}
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample(rescan=True)

    def sample(self, rescan: bool = False) -> None:
        if rescan or self._samples % self.rescan == 0:
            self._tree = process_tree(self.root)
        self._samples += 1
        pids = self._tree
        self.processes = max(self.processes, len(pids))
        self.peak_kb = max(self.peak_kb, sum(_status_kb(pid, "VmRSS") for pid in pids))
        for pid in pids:
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), _status_kb(pid, "VmHWM"))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    @property
    def hwm_mb(self) -> float:
        return sum(self.hwm_kb.values()) / 1024
