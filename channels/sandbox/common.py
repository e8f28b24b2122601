"""What every sandbox shares: fault injection, an inspection API, JSON snapshots.

Every sandbox app mounts `inspection_router(state)` under `/_sandbox`:
- `GET  /_sandbox/state`   the sandbox's records and counters (for tests and operators)
- `GET  /_sandbox/faults`  the current fault settings
- `POST /_sandbox/faults`  change them (JSON object with any of the `Faults` fields)
- `POST /_sandbox/reset`   forget every record and fault

Faults are applied by the channel's own endpoints: `await state.before_call(write=...)` may
sleep (latency) or raise an injected failure; after a write, `await state.after_write()` may
hang past the client's timeout (the write has taken effect; the answer never arrives in time).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request


@dataclass
class Faults:
    error_rate: float = 0.0  # share of calls answered with the channel's "busy" error
    latency_ms: int = 0  # added to every call
    timeout_after_write_rate: float = 0.0  # share of writes that hang after taking effect
    hang_seconds: float = 30.0  # how long such a write hangs
    fail_next: int = 0  # the next N calls fail with "busy" (deterministic tests)
    timeout_next_writes: int = 0  # the next N writes hang after taking effect
    garbage_next: int = 0  # the next N calls answer 200 with an HTML body


class InjectedBusy(Exception):
    """Raised by `before_call`; each sandbox turns it into its channel's own busy error."""


class InjectedGarbage(Exception):
    """Raised by `before_call`; each sandbox answers 200 with a non-JSON body."""


class SandboxState:
    """Records of one sandbox, guarded by a lock, optionally snapshotted to a JSON file."""

    def __init__(self, name: str, data_dir: Path | None = None) -> None:
        self.name = name
        self.faults = Faults()
        self.records: dict[str, Any] = {}
        self.counters: dict[str, int] = {}
        self.lock = threading.RLock()
        self.path = data_dir / f"{name}.json" if data_dir else None
        self.rng = random.Random()
        if self.path and self.path.exists():
            saved = json.loads(self.path.read_text("utf-8"))
            self.records = saved.get("records", {})
            self.counters = saved.get("counters", {})

    def count(self, name: str, by: int = 1) -> int:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + by
            return self.counters[name]

    def save(self) -> None:
        if not self.path:
            return
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {"records": self.records, "counters": self.counters},
                    ensure_ascii=False,
                    default=str,
                ),
                "utf-8",
            )
            tmp.replace(self.path)

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.records = {}
            self.counters = {}
        self.save()

    async def before_call(self, *, write: bool) -> None:
        f = self.faults
        self.count("calls")
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        with self.lock:
            if f.garbage_next > 0:
                f.garbage_next -= 1
                raise InjectedGarbage()
            if f.fail_next > 0:
                f.fail_next -= 1
                self.count("injected_errors")
                raise InjectedBusy()
        if f.error_rate and self.rng.random() < f.error_rate:
            self.count("injected_errors")
            raise InjectedBusy()

    async def after_write(self) -> None:
        f = self.faults
        hang = False
        with self.lock:
            if f.timeout_next_writes > 0:
                f.timeout_next_writes -= 1
                hang = True
        if not hang and f.timeout_after_write_rate:
            hang = self.rng.random() < f.timeout_after_write_rate
        if hang:
            self.count("injected_timeouts")
            await asyncio.sleep(f.hang_seconds)


def inspection_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox inspection"])

    @router.get("/state")
    def get_state() -> dict[str, Any]:
        with state.lock:
            return {"name": state.name, "records": state.records, "counters": state.counters}

    @router.get("/faults")
    def get_faults() -> dict[str, Any]:
        return asdict(state.faults)

    @router.post("/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        changes = await request.json()
        known = {f.name: f.type for f in fields(Faults)}
        if not isinstance(changes, dict) or not set(changes) <= set(known):
            raise HTTPException(422, f"fault fields are: {', '.join(known)}")
        with state.lock:
            for key, value in changes.items():
                setattr(state.faults, key, type(getattr(state.faults, key))(value))
        return asdict(state.faults)

    @router.post("/reset")
    def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return router
