"""Fixtures: a real hypercorn serving quartchat on port 0 in the test's nursery.

Every test that starts a server runs twice: on the embedded default (one
hypercorn, SQLite) and on Redis, where "the server" is two hypercorn servers
(two hubs, as two workers would run) sharing a private redis-server, and
clients are spread over the two in turn. A test about the embedded store
itself is marked ``embedded_only``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from chatclient import ChatClient
from quartchat.app import HUB_KEY, create_app
from quartchat.config import Settings
from quartchat.hub import Hub
from quartchat.log_limits import OncePer
from quartchat.patches import apply as apply_patches
from served import Servers

if TYPE_CHECKING:  # imported by pytest as a plugin, below
    from redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent

# The test process serves, as the ``quartchat`` command does: the patches are
# on from the start, for the unit tests of the objects they reach too.
apply_patches()

#: Private redis-server fixtures (``redis_server``, ``redis_url``).
pytest_plugins = ["redis_server"]

BACKENDS = ("sqlite", "redis")


@pytest.fixture(autouse=True)
def fresh_log_limits() -> None:
    """Every test starts with the log's once-a-second limits unspent: a line
    another test logged a moment ago must not hold back this test's line."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for found in getattr(logger, "filters", ()):
            if isinstance(found, OncePer):
                found.forget()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "embedded_only: about the embedded SQLite store; not run on Redis"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chat_backend" in metafunc.fixturenames:
        embedded_only = metafunc.definition.get_closest_marker("embedded_only") is not None
        metafunc.parametrize("chat_backend", BACKENDS[:1] if embedded_only else BACKENDS)


@dataclass
class Worker:
    """One hypercorn server of a chat."""

    app: QuartTrio
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.extensions[HUB_KEY]
        return hub


@dataclass
class RunningServer:
    """One chat: a single server on SQLite, or two sharing Redis."""

    settings: Settings
    workers: list[Worker]
    #: Stops every server of this chat.
    shutdown: trio.Event
    #: Set once every server of this chat has stopped (its store closed).
    stopped: trio.Event
    redis: RedisServer | None = None
    _turns: itertools.count[int] = dataclasses.field(default_factory=itertools.count)

    @property
    def app(self) -> QuartTrio:
        return self.workers[0].app

    @property
    def base_url(self) -> str:
        return self.workers[0].base_url

    @property
    def ws_url(self) -> str:
        return self.workers[0].ws_url

    @property
    def hub(self) -> Hub:
        return self.workers[0].hub

    async def stop(self) -> None:
        """Shut every server of this chat down gracefully and wait until they are."""
        self.shutdown.set()
        await self.stopped.wait()

    def next_ws_url(self) -> str:
        """The servers' sockets in turn: consecutive clients land on different workers."""
        return self.workers[next(self._turns) % len(self.workers)].ws_url

    def count(self, table: str = "messages") -> int:
        """Stored messages or users, read straight from the file or from Redis."""
        if self.redis is not None:
            from redis_server import redis_integer

            prefix = self.settings.redis_prefix
            if table == "messages":
                return redis_integer(self.redis.port, "XLEN", f"{prefix}log")
            script = "return #redis.call('KEYS', ARGV[1])"
            return redis_integer(self.redis.port, "EVAL", script, "0", f"{prefix}user:*")
        db = self.hub.log.store.sync
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


async def answer_lifespan(receive: Any, send: Any) -> None:
    """A bare ASGI app's lifespan: it starts, and stops when told to."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture
async def start_server(
    tmp_path: Path, chat_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[StartServer]:
    """Start chats on demand; at the end each shuts down gracefully. On Redis,
    a chat started again with the same ``db_path`` finds the same data."""
    numbers = itertools.count()
    started: list[RunningServer] = []
    redis: RedisServer | None = None
    if chat_backend == "redis":
        redis = request.getfixturevalue("redis_server")

    async def start(hypercorn: dict[str, Any] | None = None, **overrides: Any) -> RunningServer:
        overrides.setdefault("db_path", tmp_path / f"chat{next(numbers)}.db")
        # Leaves are announced at once unless a test is about the grace.
        overrides.setdefault("leave_grace", 0.0)
        if redis is not None:
            overrides.setdefault("redis_url", redis.url)
            overrides.setdefault("redis_prefix", f"{Path(overrides['db_path']).stem}:")
        settings = dataclasses.replace(Settings(), **overrides)
        shutdown, stopped = trio.Event(), trio.Event()
        config = hypercorn_config(**(hypercorn or {}))
        workers = []
        count = 1 if redis is None else 2
        running = [count]

        async def serve_one(app: QuartTrio, *, task_status: trio.TaskStatus[Any]) -> None:
            try:
                await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
            finally:
                running[0] -= 1
                if not running[0]:
                    stopped.set()

        for _ in range(count):
            app = create_app(settings)
            binds = await nursery.start(serve_one, app)
            workers.append(Worker(app, binds[0]))
        started.append(RunningServer(settings, workers, shutdown, stopped, redis))
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
        client = await ChatClient.connect(self.nursery, server.next_ws_url(), origin=origin)
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


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    """Runs the real server commands (``quartchat``, ``hypercorn``) as
    processes in ``tmp_path``; every one still running is killed at the end."""
    async with trio.open_nursery() as nursery:
        pool = Servers(nursery, tmp_path)
        try:
            yield pool
        finally:
            await pool.kill_all()
            nursery.cancel_scope.cancel()
