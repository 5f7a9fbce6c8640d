"""The leave grace: a short network blip does not announce a leave and a join."""

from __future__ import annotations

from typing import Any

import trio

from chatclient import ChatClient
from conftest import Clients, StartServer

ALL = frozenset[str]()
#: A window long enough for a frame that is on its way to arrive.
QUIET = 0.5
#: A grace far longer than any reconnect in these tests takes.
LONG_GRACE = 60.0

Frame = dict[str, Any]


async def drop(client: ChatClient) -> None:
    """Vanish without a close handshake, as a lost network does."""
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.ws.aclose()


def presence(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f["type"] == "presence"]


async def test_a_reconnect_within_the_grace_announces_no_leave_and_no_join(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(leave_grace=LONG_GRACE)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    assert (await alice.expect("presence", ignore=ALL))["event"] == "join"

    await drop(bob)
    assert presence(await alice.quiet(QUIET, ignore=ALL)) == []
    # Still online meanwhile: in a newcomer's list, and holding the nick.
    carol, _ = await clients.join(server, nick="bob")
    assert carol.user["nick"] == "bob-2"
    assert bob.user in carol.welcome["online"]
    assert (await alice.expect("presence", ignore=ALL))["user"] == carol.user

    back, _ = await clients.join(server, token=bob.welcome["token"])
    assert back.user == bob.user
    assert presence(await alice.quiet(QUIET, ignore=ALL)) == []
    # The new connection is the one that counts: a second tab coming and
    # going announces nothing either.
    tab, _ = await clients.join(server, token=bob.welcome["token"])
    await tab.aclose()
    assert presence(await alice.quiet(QUIET, ignore=ALL)) == []


async def test_typing_is_cleared_at_once_despite_the_grace(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(leave_grace=LONG_GRACE)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await bob.send(type="typing", active=True, to=None)
    typing = await alice.expect("typing")
    assert typing["active"] is True
    await drop(bob)
    typing = await alice.expect("typing", ignore=frozenset(), within=5)
    assert typing == {"type": "typing", "user": bob.user, "active": False, "to": None}
    assert presence(await alice.quiet(QUIET, ignore=ALL)) == []


async def test_the_leave_comes_when_the_grace_ends(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(leave_grace=0.3)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    assert (await alice.expect("presence", ignore=ALL))["event"] == "join"
    await bob.aclose()
    left = await alice.expect("presence", ignore=ALL, within=5)
    assert left == {"type": "presence", "event": "leave", "user": bob.user}
    # Gone for good: the nick is free, and coming back is a join again.
    carol, _ = await clients.join(server, nick="bob")
    assert carol.user["nick"] == "bob"
    assert (await alice.expect("presence", ignore=ALL))["event"] == "join"
    await clients.join(server, token=bob.welcome["token"])
    joined = await alice.expect("presence", ignore=ALL)
    assert joined["event"] == "join" and joined["user"]["id"] == bob.user["id"]
