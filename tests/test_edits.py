"""Edits and deletes over a real socket, on SQLite and on Redis (two workers,
clients alternating between them): who gets ``edited`` and ``deleted``,
live and in replay; history as it is now; acks and dedup of an edit as of
a send; and every refusal, which stores nothing."""

from __future__ import annotations

from typing import Any

from test_rooms import create_room

from chatclient import ChatClient
from conftest import Clients, RunningServer

QUIET = frozenset({"presence", "typing", "member", "history"})


async def edit(client: ChatClient, target: int, offset: str, text: str) -> dict[str, Any]:
    await client.send(type="edit", target=target, client_offset=offset, text=text)
    return await client.expect("ack")


async def in_room(clients: list[ChatClient], room: dict[str, Any]) -> None:
    for client in clients:
        await client.send(type="room_join", room=room["id"])
        await client.expect("history", ignore=QUIET)


async def say_there(client: ChatClient, room: dict[str, Any], offset: str, text: str) -> int:
    """Send to ``room``; the id acked (notices and others' messages skipped)."""
    await client.send(type="send", client_offset=offset, text=text, room=room["id"])
    ack = await client.expect("ack", ignore=QUIET | {"message", "role", "mute"})
    return int(ack["id"])


async def rejoin(
    clients: Clients, server: RunningServer, token: str, last_id: int
) -> tuple[ChatClient, list[dict[str, Any]]]:
    """A new connection of the user of ``token`` from ``last_id``: every
    frame of its replay (the ``message``, ``edited`` and ``deleted`` ones alike)."""
    client = await clients.connect(server)
    await client.send(type="hello", token=token, last_id=last_id)
    client.welcome = await client.recv()
    assert client.welcome["type"] == "welcome"
    await client.send(type="ping")
    frames = []
    while (frame := await client.recv())["type"] != "pong":
        if frame["type"] in ("message", "edited", "deleted"):
            frames.append(frame)
    return client, frames


async def history_of(client: ChatClient, **request: Any) -> list[dict[str, Any]]:
    await client.send(type="history", **request)
    messages: list[dict[str, Any]] = (await client.expect("history"))["messages"]
    return messages


async def test_an_edit_reaches_the_room_live_and_history_shows_the_new_text(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    sent = await alice.say("s1", "helo")
    assert (await bob.expect("message"))["id"] == sent["id"]

    ack = await edit(alice, sent["id"], "e1", "hello")
    assert ack["client_offset"] == "e1" and ack["id"] > sent["id"]
    edited = await bob.expect("edited")
    assert edited["id"] == ack["id"] and edited["target"] == sent["id"]
    assert (edited["text"], edited["room"], edited["ts"]) == ("hello", "general", ack["ts"])
    assert edited["from"] == alice.user
    # No echo to the connection that edited: its ack says it all.
    assert await alice.quiet(0.3, ignore=QUIET) == []

    [shown] = [m for m in await history_of(bob) if m["id"] == sent["id"]]
    assert (shown["text"], shown["edited_ts"]) == ("hello", ack["ts"])
    assert all(m["id"] != ack["id"] for m in await history_of(bob)), "an edit is no message"


async def test_a_retried_edit_is_stored_once_and_acked_with_the_same_id(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    sent = await alice.say("s1", "first")
    await bob.expect("message")
    first = await edit(alice, sent["id"], "e1", "second")
    again = await edit(alice, sent["id"], "e1", "second")
    assert again["id"] == first["id"]
    assert (await bob.expect("edited"))["id"] == first["id"]
    assert await bob.quiet(0.5, ignore=QUIET) == []


async def test_edits_that_are_not_the_authors_are_refused_and_store_nothing(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    sent = await alice.say("s1", "mine")
    await bob.expect("message")
    stored = server.count()
    cases = [(sent["id"], "forbidden"), (sent["id"] + 1000, "unknown_message")]
    for target, code in cases:
        await bob.send(type="edit", target=target, client_offset=f"x{target}", text="yours")
        error = await bob.expect("error")
        assert (error["code"], error["client_offset"]) == (code, f"x{target}")
    ack = await bob.say("b1", "mine too")
    # An edit entry is no target either.
    own_edit = await edit(bob, ack["id"], "e1", "mine, edited")
    await bob.send(type="edit", target=own_edit["id"], client_offset="e2", text="?")
    assert (await bob.expect("error"))["code"] == "unknown_message"
    assert server.count() == stored + 2
    await alice.expect("message")
    assert (await alice.expect("edited"))["id"] == own_edit["id"]
    assert await alice.quiet(0.3, ignore=QUIET) == []
    [shown] = [m for m in await history_of(alice) if m["id"] == sent["id"]]
    assert shown["text"] == "mine" and "edited_ts" not in shown


async def test_a_delete_reaches_everyone_and_leaves_a_deleted_message_in_history(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    sent = await alice.say("s1", "my password is hunter2")
    await bob.expect("message")
    await edit(alice, sent["id"], "e1", "my password is hunter3")
    await bob.expect("edited")

    await alice.send(type="delete", target=sent["id"], ref="d1")
    for client in (alice, bob):
        deleted = await client.expect("deleted")
        assert deleted["target"] == sent["id"] and deleted["by"] == alice.user
        assert deleted["room"] == "general" and deleted["id"] > sent["id"]
    [shown] = [m for m in await history_of(bob) if m["id"] == sent["id"]]
    assert shown["deleted"] is True and "text" not in shown
    assert shown["from"] == alice.user
    # Gone for good: a second delete, or an edit now, finds no message.
    await alice.send(type="delete", target=sent["id"], ref="d2")
    error = await alice.expect("error")
    assert (error["code"], error["ref"]) == ("unknown_message", "d2")
    await alice.send(type="edit", target=sent["id"], client_offset="e2", text="back")
    assert (await alice.expect("error"))["code"] == "unknown_message"


async def test_a_client_that_was_away_gets_edits_and_deletes_in_its_replay(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    kept = await alice.say("s1", "keep me")
    gone = await alice.say("s2", "delete me")
    await bob.expect("message")
    await bob.expect("message")
    cursor = gone["id"]
    await bob.aclose()
    edited = await edit(alice, kept["id"], "e1", "kept, edited")
    await alice.send(type="delete", target=gone["id"])
    deleted = await alice.expect("deleted")

    _, frames = await rejoin(clients, server, bob.welcome["token"], cursor)
    assert [(f["type"], f["id"], f["target"]) for f in frames] == [
        ("edited", edited["id"], kept["id"]),
        ("deleted", deleted["id"], gone["id"]),
    ]
    assert frames[0]["text"] == "kept, edited"
    # From the start, the messages come as they are now.
    _, replay = await rejoin(clients, server, bob.welcome["token"], 0)
    by_id = {m["id"]: m for m in replay}
    assert by_id[kept["id"]]["text"] == "kept, edited"
    assert "edited_ts" in by_id[kept["id"]]


async def test_moderators_delete_in_their_room_members_do_not(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    room = await create_room(alice, "design")
    await in_room([bob, carol], room)
    said = await say_there(bob, room, "b1", "spam spam")
    await carol.send(type="delete", target=said, ref="c")
    error = await carol.expect("error", ignore=QUIET | {"message"})
    assert (error["code"], error["ref"]) == ("forbidden", "c")

    await alice.send(type="delete", target=said, ref="a")  # the owner
    for client in (alice, bob, carol):
        deleted = await client.expect("deleted", ignore=QUIET | {"message"})
        assert deleted["by"] == alice.user and deleted["room"] == room["id"]
    [record] = await server.hub.backends.moderation.audit(None, 10)
    entry = record.entry
    assert (entry.actor, entry.action, entry.user, entry.room) == (
        alice.user["id"],
        "delete",
        bob.user["id"],
        room["id"],
    )
    assert str(said) in entry.detail


async def test_a_private_messages_edit_and_delete_reach_its_two_users_only(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    sent = await alice.say("p1", "just us", to=bob.user["id"])
    await bob.expect("message")
    await edit(alice, sent["id"], "e1", "just us two")
    edited = await bob.expect("edited")
    assert edited["room"] is None and edited["to"] == bob.user
    await bob.send(type="delete", target=sent["id"], ref="d")  # not the author
    assert (await bob.expect("error"))["code"] == "forbidden"
    await alice.send(type="delete", target=sent["id"])
    await alice.expect("deleted")
    await bob.expect("deleted")
    assert await carol.quiet(0.5) == []
    await carol.send(type="edit", target=sent["id"], client_offset="x", text="me too")
    assert (await carol.expect("error"))["code"] == "unknown_message"
    public = await alice.say("g1", "hello all")
    _, replay = await rejoin(clients, server, carol.welcome["token"], 0)
    assert [f["id"] for f in replay] == [public["id"]]
    assert all(sent["id"] not in (f["id"], f.get("target")) for f in replay)
