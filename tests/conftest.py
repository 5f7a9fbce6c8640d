"""Fixtures: a real hypercorn serving quartchat on port 0 in the test's nursery."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from chatclient import ChatClient
from quartchat.app import HUB_KEY, create_app
from quartchat.config import Settings
from quartchat.hub import Hub

ROOT = Path(__file__).resolve().parent.parent

#: Private redis-server fixtures (``redis_server``, ``redis_url``).
pytest_plugins = ["redis_server"]


@dataclass
class RunningServer:
    app: QuartTrio
    settings: Settings
    base_url: str
    shutdown: trio.Event

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.extensions[HUB_KEY]
        return hub

    def count(self, table: str = "messages") -> int:
        """Rows in a table, read straight from the file."""
        db = self.hub.store.sync
        with db._reader() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


StartServer = Callable[..., Awaitable[RunningServer]]


def hypercorn_config(**overrides: Any) -> Config:
    """The project's hypercorn.toml, bound to a free port."""
    config = Config.from_toml(ROOT / "hypercorn.toml")
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    # A closed socket's TCP connection stays until the client drops it, and
    # shutdown waits that long for it: keep the tests' wait short.
    config.graceful_timeout = 0.3
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start servers on demand; at the end each shuts down gracefully."""
    numbers = itertools.count()
    started: list[RunningServer] = []

    async def start(hypercorn: dict[str, Any] | None = None, **overrides: Any) -> RunningServer:
        overrides.setdefault("db_path", tmp_path / f"chat{next(numbers)}.db")
        # Leaves are announced at once unless a test is about the grace.
        overrides.setdefault("leave_grace", 0.0)
        settings = dataclasses.replace(Settings(), **overrides)
        app = create_app(settings)
        shutdown = trio.Event()
        config = hypercorn_config(**(hypercorn or {}))
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=shutdown.wait))
        started.append(RunningServer(app, settings, binds[0], shutdown))
        return started[-1]

    async with trio.open_nursery() as nursery:
        yield start
        for running in started:
            running.shutdown.set()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


class Clients:
    """Opens test clients and closes every one of them at the end."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.opened: list[ChatClient] = []

    async def connect(self, server: RunningServer, *, origin: str | None = None) -> ChatClient:
        client = await ChatClient.connect(self.nursery, server.ws_url, origin=origin)
        self.opened.append(client)
        return client

    async def join(
        self, server: RunningServer, **hello: Any
    ) -> tuple[ChatClient, list[dict[str, Any]]]:
        client = await self.connect(server)
        return client, await client.hello(**hello)


@pytest.fixture
async def clients(start_server: StartServer) -> AsyncIterator[Clients]:
    """Depends on ``start_server`` so clients close before servers stop."""
    async with trio.open_nursery() as nursery:
        pool = Clients(nursery)
        yield pool
        with trio.move_on_after(5):
            for client in pool.opened:
                await client.aclose()
        nursery.cancel_scope.cancel()
