"""New identities are bounded: a rate per client address, and silent ones pruned.

Every ``hello`` without a token stores a user, so without these a loop of
anonymous connects would grow the users table forever.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pytest
import trio

import quartchat.identities
from conftest import Clients, StartServer
from fakesession import running_hub
from quartchat.backends import open_backends
from quartchat.backends.sqlite_moderation import SqliteModeration
from quartchat.config import Settings
from quartchat.errors import POLICY_VIOLATION, CloseConnection
from quartchat.hub import Hub
from quartchat.models import User
from quartchat.protocol import Hello
from quartchat.store import AsyncStore

ANONYMOUS = Hello(token=None, nick=None, last_id=None, epoch=None)


async def test_new_identities_are_rate_limited_per_client_address(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    settings = Settings(db_path=tmp_path / "chat.db", new_identity_rate=0.1, new_identity_burst=3)
    hub = Hub(settings, await open_backends(settings))  # not running: no timers but the test's
    made = [await hub.identify(ANONYMOUS, "192.0.2.1") for _ in range(3)]
    with pytest.raises(CloseConnection) as refused:
        await hub.identify(ANONYMOUS, "192.0.2.1")
    assert refused.value.code == POLICY_VIOLATION
    assert refused.value.reason == "too many new identities; retry later"

    await hub.identify(ANONYMOUS, "192.0.2.2")  # another address has its own allowance
    token_hello = Hello(token=made[0].token, nick=None, last_id=None, epoch=None)
    assert (await hub.identify(token_hello, "192.0.2.1")).stored == made[0].stored

    await trio.sleep(10)  # one identity back at 0.1/s
    await hub.identify(ANONYMOUS, "192.0.2.1")
    with pytest.raises(CloseConnection):
        await hub.identify(ANONYMOUS, "192.0.2.1")
    await hub.aclose()


async def test_a_flood_of_new_identities_from_one_address_is_closed_with_1008(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(new_identity_rate=0.001, new_identity_burst=2)
    first, _ = await clients.join(server)
    await clients.join(server)
    third = await clients.connect(server)
    await third.send(type="hello", token=None, nick=None, last_id=None, epoch=None)
    assert await third.close_code() == POLICY_VIOLATION
    assert server.count("users") == 2
    back, _ = await clients.join(server, token=first.welcome["token"])  # not a new identity
    assert back.user == first.user


async def test_silent_users_are_pruned_at_start_then_every_ttl_keeping_online_and_admins(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[float, int, list[str]]] = []

    async def prune(self: AsyncStore, created_before: int, keep: Collection[str]) -> int:
        calls.append((trio.current_time(), created_before, sorted(keep)))
        return 0

    async def admins(self: SqliteModeration) -> list[str]:
        return ["u-admin"]

    monkeypatch.setattr(AsyncStore, "prune_silent_users", prune)
    monkeypatch.setattr(SqliteModeration, "admins", admins)
    monkeypatch.setattr(quartchat.identities, "now_ms", lambda: 1_000_000)
    settings = Settings(db_path=tmp_path / "chat.db", silent_user_ttl=60)
    async with running_hub(settings) as hub:
        start = trio.current_time()
        await trio.sleep(1)  # the first pruning is done
        await hub.backends.presence.connect("w.1", User("u-online", "online"))
        await trio.sleep(149)
    assert calls == [
        (start, 1_000_000 - 60_000, ["u-admin"]),
        (start + 60, 1_000_000 - 60_000, ["u-admin", "u-online"]),
        (start + 120, 1_000_000 - 60_000, ["u-admin", "u-online"]),
    ]
