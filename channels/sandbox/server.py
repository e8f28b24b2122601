"""Run the channel sandboxes: each kind's `create_app(state)` on its own port, one process."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from channels.sandbox.common import SandboxState

SANDBOXES: dict[str, str] = {
    "website": "channels.sandbox.website:create_app",
    "catalogue": "channels.sandbox.catalogue:create_app",
    "wechat": "channels.sandbox.wechat:create_app",
    "weibo": "channels.sandbox.weibo:create_app",
}

log = logging.getLogger(__name__)


def sandbox_app(kind: str, data_dir: Path | None = None) -> FastAPI:
    module_name, _, attr = SANDBOXES[kind].partition(":")
    create_app: Callable[[SandboxState], FastAPI] = getattr(
        importlib.import_module(module_name), attr
    )
    return create_app(SandboxState(kind, data_dir))


async def serve_sandboxes(
    ports: dict[str, int], host: str = "127.0.0.1", data_dir: Path | None = None
) -> None:
    """Serve each kind in `ports` until cancelled or signalled."""
    servers = []
    for kind, port in ports.items():
        config = uvicorn.Config(
            sandbox_app(kind, data_dir),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        servers.append(uvicorn.Server(config))
    await asyncio.gather(*(server.serve() for server in servers))
