"""`publisher items publish --wait` against real processes: the API, a Celery worker, beat and
the website and catalogue sandboxes (the catalogue's address misconfigured, so that it
refuses every write: a channel that fails).

One line per channel: appended when it changes in a pipe or a log, redrawn in place on a
terminal; the command returns once every channel is live (0) or waits with a reason (0),
and exits 1 naming a failed channel, its error in Chinese and the channel's own text.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from datetime import date
from itertools import pairwise
from typing import Any

import pytest

from tests.e2e.system import CLI, System

ITEM = {
    "title": "松山湖2026年度残疾人两项补贴发放名单公示",
    "summary": "公示困难残疾人生活补贴和重度残疾人护理补贴的发放对象。",
    "body_html": "<p>经审核，共有<strong>58</strong>名残疾人符合补贴条件。</p>",
    "domain": "welfare",
    "department": "sgj",
    "formed_on": date(2026, 11, 16).isoformat(),
    "channels": ["website"],
}
BEIJING_TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System(tmp_path_factory.mktemp("cli-wait"), {})
    # A wrong address: the catalogue answers 404 to every write, which is permanent.
    system.env["PUBLISHER_CATALOGUE_API_BASE"] = system.sandbox["catalogue"] + "/no-such-prefix"
    try:
        system.start_all()
        yield system
    finally:
        system.stop()


def reviewed_item(system: System, **overrides: Any) -> int:
    item_id: int = system.call("POST", "/items", json={**ITEM, **overrides})["id"]
    system.review(item_id)
    return item_id


def website_lines(output: str) -> list[str]:
    return [line.rstrip() for line in output.splitlines() if line.startswith("website")]


def test_in_a_pipe_each_change_is_a_new_line_until_every_channel_is_live(system: System) -> None:
    item_id = reviewed_item(system)
    done = system.run("items", "publish", str(item_id), "--wait", "--timeout", "60")
    assert done.returncode == 0, (done.stdout, done.stderr, system.logs())
    index_no = system.call("GET", f"/items/{item_id}")["index_no"]
    lines = done.stdout.splitlines()
    assert lines[0] == f"信息 {item_id} 已发布，索引号 {index_no}"
    assert lines[-1] == "各渠道均已上线"
    url = system.deliveries(item_id)["website"]["url"]
    shown = website_lines(done.stdout)
    assert shown[-1].split() == ["website", "网站", "已上线", url]  # the whole URL
    assert all(a != b for a, b in pairwise(shown))  # only changes
    assert "\x1b[" not in done.stdout and done.stderr == ""


def test_a_failed_channel_exits_1_named_with_its_error_and_its_own_text(system: System) -> None:
    item_id = reviewed_item(system, channels=["website", "catalogue"])
    done = system.run("items", "publish", str(item_id), "--wait", "--timeout", "60")
    assert done.returncode == 1, (done.stdout, done.stderr, system.logs())
    deliveries = system.deliveries(item_id)
    assert deliveries["website"]["state"] == "live"
    error = deliveries["catalogue"]["last_error"]
    assert deliveries["catalogue"]["state"] == "failed" and error["kind"] == "permanent"
    own = " ".join(str(part) for part in (error["code"], error["message"]) if part)
    assert done.stderr.splitlines() == [
        f"政务公开目录（catalogue）发布失败：渠道拒绝了内容（渠道原文：{own}）"
    ]
    catalogue = [line for line in done.stdout.splitlines() if line.startswith("catalogue")]
    assert catalogue[-1].split()[:3] == ["catalogue", "政务公开目录", "失败"]


def test_a_channel_waiting_with_a_reason_ends_the_wait_with_that_reason(system: System) -> None:
    assert system.run("channels", "pause", "website", "--reason", "维护").returncode == 0
    try:
        item_id = reviewed_item(system)
        done = system.run("items", "publish", str(item_id), "--wait", "--timeout", "60")
    finally:
        assert system.run("channels", "resume", "website").returncode == 0
    assert done.returncode == 0, (done.stdout, done.stderr, system.logs())
    last = website_lines(done.stdout)[-1]
    assert re.fullmatch(
        rf"website\s+网站\s+已推迟\s+渠道已暂停，恢复后继续（{BEIJING_TIME} 再检查）", last
    ), done.stdout
    assert done.stdout.splitlines()[-1] == "已返回：1 个渠道在等待，原因见上"
    system.wait_states(item_id, "live")  # resumed: it goes out after all


def on_a_terminal(system: System, *args: str, timeout: float = 90) -> tuple[int, str]:
    """Run `publisher *args` with a terminal (a pty, 160 columns) as its stdout and stderr;
    its exit status and everything it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        [*CLI, *args], env=system.env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    written = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    return proc.wait(30), written.decode().replace("\r\n", "\n")


def test_on_a_terminal_the_lines_are_redrawn_in_place(system: System) -> None:
    item_id = reviewed_item(system)
    system.faults("website", latency_ms=1500)  # long enough to be seen being sent
    try:
        status, written = on_a_terminal(
            system, "items", "publish", str(item_id), "--wait", "--timeout", "60"
        )
    finally:
        system.faults("website", latency_ms=0)
    assert status == 0, (written, system.logs())
    redraws = re.findall(r"\x1b\[(\d+)F\x1b\[J", written)
    assert redraws and all(rows == "1" for rows in redraws), written  # one line, one row
    final = re.split(r"\x1b\[\d+F\x1b\[J", written)[-1].splitlines()
    url = system.deliveries(item_id)["website"]["url"]
    assert final[0].split() == ["website", "网站", "已上线", url]
    assert final[-1] == "各渠道均已上线"
    index_no = system.call("GET", f"/items/{item_id}")["index_no"]
    assert written.startswith(f"信息 {item_id} 已发布，索引号 {index_no}\n")
