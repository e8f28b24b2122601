"""`publisher up --demo` as a new user runs it (`make run`): the demo items reach the sandbox
website and catalogue within seconds, the WeChat sandbox's callback is taken in safe mode, and
SIGTERM stops every child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.e2e.system import wait_for
from tests.support import free_port


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_up_runs_the_whole_system_with_demo_data_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("api", "website", "catalogue", "wechat", "weibo")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    env.update({f"PUBLISHER_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["PUBLISHER_VAR_DIR"] = str(tmp_path / "var")
    env["PUBLISHER_SWEEP_INTERVAL_SECONDS"] = "1"
    env["PUBLISHER_RESEND_AFTER_SECONDS"] = "2"
    out = (tmp_path / "up.out").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from publisher.cli import main; main()", "up", "--demo"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        website = f"http://127.0.0.1:{ports['website']}"
        listing = f"http://127.0.0.1:{ports['catalogue']}/733099896/zwgkList.shtml?catecode=0900"

        def all_demo_items_public() -> bool:
            try:
                home = requests.get(website + "/", timeout=2).text
                catalogue = requests.get(listing, timeout=2).text
            except requests.RequestException:
                return False
            return (
                home.count("/articles/item-") >= 7
                and len(set(re.findall(r"733099896/\d{4}-\d{5}", catalogue))) == 7
            )

        def output() -> str:
            out.seek(0)
            return out.read()

        wait_for(all_demo_items_public, 90, "the 7 demo items on the website and catalogue")
        api_log = tmp_path / "var" / "logs" / "api.log"

        def wechat_called_back() -> bool:
            return '"POST /wechat/callback HTTP/1.1" 200' in api_log.read_text()

        # The WeChat sandbox calls back in safe mode, and the API takes it; the access log
        # shows none of the signed query.
        wait_for(wechat_called_back, 60, "the WeChat sandbox's callback, answered 200")
        assert "signature" not in api_log.read_text()
        text = output()
        assert f"http://127.0.0.1:{ports['api']}/docs" in text
        assert listing in text
        assert "demo: 7 items created and published" in text
        kids = children_of(proc.pid)
        assert len(kids) >= 4  # sandbox, api, worker, beat
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, output()
    for pid in kids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), f"child {pid} still running"
