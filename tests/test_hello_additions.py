"""Additions to ``hello`` and ``welcome``: ``nick_exact`` and the server's limits."""

from __future__ import annotations

from typing import Any

from chatclient import ChatClient
from conftest import Clients, RunningServer, StartServer

ALL = frozenset[str]()
#: A window long enough for a frame that is on its way to arrive.
QUIET = 0.3


async def exact_hello(client: ChatClient, nick: str, token: str | None = None) -> dict[str, Any]:
    """Send a ``nick_exact`` hello and return the server's first answer."""
    await client.send(
        type="hello", token=token, nick=nick, last_id=None, epoch=None, nick_exact=True
    )
    return await client.recv()


async def test_a_taken_nick_is_refused_before_anyone_hears_of_the_newcomer(
    server: RunningServer, clients: Clients
) -> None:
    """Asking for ALICE while alice is online: the newcomer learns it is taken,
    picks another on the same socket, and others see one join, with that name."""
    alice, _ = await clients.join(server, nick="alice")
    users_before = server.count("users")
    newcomer = await clients.connect(server)

    refused = await exact_hello(newcomer, "ALICE")
    assert refused["type"] == "error" and refused["code"] == "nick_taken"
    assert "client_offset" not in refused
    assert await alice.quiet(QUIET, ignore=ALL) == []
    assert server.count("users") == users_before  # no identity made for a refused hello

    welcome = await exact_hello(newcomer, "bob")
    assert welcome["type"] == "welcome"
    assert welcome["user"]["nick"] == "bob"
    seen = await alice.quiet(QUIET, ignore=ALL)
    assert seen == [{"type": "presence", "event": "join", "user": welcome["user"]}]


async def test_a_bad_nick_is_refused_and_the_socket_stays_open(
    server: RunningServer, clients: Clients
) -> None:
    client = await clients.connect(server)
    refused = await exact_hello(client, "   ")
    assert (refused["type"], refused["code"]) == ("error", "bad_nick")
    welcome = await exact_hello(client, "carol")
    assert welcome["user"]["nick"] == "carol"


async def test_a_returning_user_asking_for_a_taken_nick_is_refused_too(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    await alice.aclose()
    bob, _ = await clients.join(server, nick="bob")
    again = await clients.connect(server)
    refused = await exact_hello(again, "Bob", token=alice.welcome["token"])
    assert refused["code"] == "nick_taken"
    assert await bob.quiet(QUIET, ignore=ALL) == []
    welcome = await exact_hello(again, "alice", token=alice.welcome["token"])
    assert welcome["user"] == alice.user


async def test_without_nick_exact_a_taken_nick_still_gets_a_variant(
    server: RunningServer, clients: Clients
) -> None:
    """The v1 behaviour is unchanged for clients that do not ask."""
    await clients.join(server, nick="alice")
    other, _ = await clients.join(server, nick="ALICE")
    assert other.user["nick"] == "ALICE-2"


async def test_welcome_carries_the_servers_limits(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(send_rate=3.0, send_burst=7, history_max=40)
    client, _ = await clients.join(server, nick="alice")
    assert client.welcome["limits"] == {
        "text": 2000,
        "nick": 32,
        "send_rate": 3.0,
        "send_burst": 7,
        "frame_rate": server.settings.frame_rate,
        "frame_burst": server.settings.frame_burst,
        "frame_bytes": server.settings.max_frame_bytes,
        "history": 40,
    }
