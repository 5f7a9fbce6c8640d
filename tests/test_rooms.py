"""Rooms over a real socket, on SQLite and on Redis (two workers, clients
alternating between them): who gets a room's frames, live, in replay, in
history, in the lists; the backlog after a join; unread counts, mentions
and read markers; and the refusals, each echoing the frame's ``ref``."""

from __future__ import annotations

from typing import Any

from chatclient import ChatClient
from conftest import Clients, RunningServer, StartServer


async def create_room(
    client: ChatClient, name: str, kind: str = "public", ref: str = "c1"
) -> dict[str, Any]:
    """Create a room; return it (after its member answer and its empty backlog)."""
    await client.send(type="room_create", name=name, kind=kind, topic="", ref=ref)
    answer = await client.expect("member")
    assert answer["event"] == "join" and answer["ref"] == ref
    assert answer["user"] == client.user and answer["by"] == client.user
    backlog = await client.expect("history")
    assert backlog["room"] == answer["room"]["id"] and backlog["messages"] == []
    room: dict[str, Any] = answer["room"]
    return room


async def say_in(client: ChatClient, room: str, offset: str, text: str) -> dict[str, Any]:
    await client.send(type="send", client_offset=offset, text=text, room=room)
    return await client.expect("ack")


async def test_a_private_room_of_two_never_reaches_a_third(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    room = await create_room(alice, "secret", "private")
    await alice.send(type="room_invite", room=room["id"], user=bob.user["id"], ref="i1")
    answer = await alice.expect("member")
    assert (answer["event"], answer["ref"], answer["user"]) == ("invite", "i1", bob.user)
    notice = await bob.expect("member")
    assert notice["event"] == "invite" and "ref" not in notice and notice["by"] == alice.user
    assert (await bob.expect("history"))["room"] == room["id"]

    ack = await say_in(alice, room["id"], "s1", "the plan")
    message = await bob.expect("message")
    assert (message["id"], message["room"], message["text"]) == (ack["id"], room["id"], "the plan")
    await alice.send(type="typing", active=True, room=room["id"])
    typing = await bob.expect("typing", ignore=frozenset({"presence"}))
    assert typing["room"] == room["id"]

    # Carol: nothing live, no typing, no listing, members and history refused.
    assert await carol.quiet(0.5, ignore=frozenset({"presence"})) == []
    await carol.send(type="rooms", ref="r")
    listed = await carol.expect("rooms")
    assert room["id"] not in [r["id"] for r in listed["rooms"]]
    for kind in ("members", "room_join", "room_leave", "history"):
        await carol.send(type=kind, room=room["id"], ref=f"x-{kind}")
        error = await carol.expect("error")
        assert error["code"] == "unknown_room"
        assert error.get("ref") == (None if kind == "history" else f"x-{kind}")
    await carol.send(type="send", client_offset="c1", text="let me in", room=room["id"])
    refused = await carol.expect("error")
    assert (refused["code"], refused["client_offset"]) == ("unknown_room", "c1")

    # Nor after a reconnect: replay and version 1's history hold none of it.
    await carol.aclose()
    again, replay = await clients.join(server, token=carol.welcome["token"], last_id=0)
    assert room["id"] not in [m.get("room") for m in replay]
    assert [r["room"]["id"] for r in again.welcome["rooms"]] == ["general"]
    await again.send(type="history")
    page = await again.expect("history")
    assert all(m.get("room") != room["id"] for m in page["messages"])
    # Bob's reconnect replays it, and his welcome lists the room.
    await bob.aclose()
    bob2, replay = await clients.join(server, token=bob.welcome["token"], last_id=0)
    assert [m["id"] for m in replay if m.get("room") == room["id"]] == [ack["id"]]
    assert room["id"] in [r["room"]["id"] for r in bob2.welcome["rooms"]]


async def test_a_join_gets_the_backlog_then_live_messages_in_id_order(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "design")
    before = [(await say_in(alice, room["id"], f"b{i}", f"old {i}"))["id"] for i in range(3)]
    assert await bob.quiet(0.3, ignore=frozenset({"presence"})) == []  # not a member yet
    await bob.send(type="room_join", room=room["id"], ref="j")
    joined = await bob.expect("member")
    assert (joined["event"], joined["ref"]) == ("join", "j")
    backlog = await bob.expect("history")
    assert [m["id"] for m in backlog["messages"]] == before
    assert backlog["room"] == room["id"] and backlog["has_more"] is False
    seen_by_alice = await alice.expect("member")
    assert seen_by_alice["user"] == bob.user and "ref" not in seen_by_alice
    after = (await say_in(alice, room["id"], "a1", "new"))["id"]
    live = await bob.expect("message")
    assert live["id"] == after > max(before)
    # Joining again changes nothing: the answer alone, to the asker alone.
    await bob.send(type="room_join", room=room["id"], ref="j2")
    assert (await bob.expect("member"))["ref"] == "j2"
    assert await alice.quiet(0.3, ignore=frozenset({"presence"})) == []


async def test_after_a_leave_nothing_of_the_room_arrives(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "lobby")
    await bob.send(type="room_join", room=room["id"])
    await bob.expect("member")
    await bob.expect("history")
    await alice.expect("member")
    await bob.send(type="room_leave", room=room["id"], ref="l")
    left = await bob.expect("member")
    assert (left["event"], left["ref"]) == ("leave", "l")
    assert (await alice.expect("member"))["event"] == "leave"
    await say_in(alice, room["id"], "x", "after bob left")
    assert await bob.quiet(0.5, ignore=frozenset({"presence"})) == []
    await bob.send(type="history", room=room["id"], ref="h")
    assert (await bob.expect("error"))["code"] == "not_member"
    await bob.send(type="room_leave", room="general", ref="g")
    error = await bob.expect("error")
    assert (error["code"], error["ref"]) == ("forbidden", "g")


async def test_welcome_counts_unread_and_mentions_and_read_markers_are_shared(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "team")
    await bob.send(type="room_join", room=room["id"])
    await bob.expect("member")
    await bob.expect("history")
    await alice.expect("member")
    await bob.aclose()
    first = await say_in(alice, room["id"], "m1", "hello @bob")
    await say_in(alice, room["id"], "m2", "anyone?")
    assert first["id"]
    bob_tab1, _ = await clients.join(server, token=bob.welcome["token"])
    bob_tab2, _ = await clients.join(server, token=bob.welcome["token"])
    standing = {r["room"]["id"]: r for r in bob_tab1.welcome["rooms"]}[room["id"]]
    assert (standing["unread"], standing["mentions"], standing["read_id"]) == (2, 1, 0)
    await bob_tab1.send(type="history", room=room["id"])
    page = await bob_tab1.expect("history")
    assert page["messages"][0]["mentions"] == [bob.user["id"]]
    assert "mentions" not in page["messages"][1]

    await bob_tab1.send(type="read", room=room["id"], id=first["id"], ref="rd")
    mine = await bob_tab1.expect("read")
    assert (mine["room"], mine["id"], mine["ref"]) == (room["id"], first["id"], "rd")
    other = await bob_tab2.expect("read", ignore=frozenset({"presence"}))
    assert (other["id"], "ref" in other) == (first["id"], False)
    await bob_tab1.send(type="read", room=room["id"], id=1)  # never down
    assert (await bob_tab1.expect("read"))["id"] == first["id"]
    await bob_tab1.send(type="read", room=room["id"], id=10**12)  # clamped to the log
    assert (await bob_tab1.expect("read"))["id"] == server.hub.tail_relay._relayed
    bob_tab3, _ = await clients.join(server, token=bob.welcome["token"])
    standing = {r["room"]["id"]: r for r in bob_tab3.welcome["rooms"]}[room["id"]]
    assert standing["unread"] == 0 and standing["mentions"] == 0


async def test_a_room_frame_about_a_room_one_is_not_in_is_refused_and_stores_nothing(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "public-talk")
    stored = server.count()
    await bob.send(type="send", client_offset="o1", text="hi", room=room["id"])
    error = await bob.expect("error")
    assert (error["code"], error["client_offset"]) == ("not_member", "o1")
    await bob.send(type="send", client_offset="o2", text="hi", room="r-nope")
    assert (await bob.expect("error"))["code"] == "unknown_room"
    await bob.send(type="typing", active=True, room=room["id"])
    assert (await bob.expect("error"))["code"] == "not_member"
    assert await alice.quiet(0.3, ignore=frozenset({"presence"})) == []
    await bob.send(type="members", room=room["id"], ref="m")
    assert (await bob.expect("error"))["code"] == "not_member"
    await bob.send(type="read", room=room["id"], id=1, ref="r")
    assert (await bob.expect("error"))["code"] == "not_member"
    await bob.send(type="room_create", name="Public-Talk", kind="public", ref="dup")
    taken = await bob.expect("error")
    assert (taken["code"], taken["ref"]) == ("room_taken", "dup")
    assert server.count() == stored


async def test_members_and_rooms_answers(server: RunningServer, clients: Clients) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "crew", "private")
    await alice.send(type="room_invite", room=room["id"], user=bob.user["id"])
    await alice.expect("member")
    await alice.send(type="members", room=room["id"], ref="m")
    members = await alice.expect("members")
    assert members["ref"] == "m"
    assert [(m["id"], m["role"], m["online"]) for m in members["members"]] == [
        (alice.user["id"], "owner", True),
        (bob.user["id"], "member", True),
    ]
    await bob.send(type="rooms")
    listed = await bob.expect("rooms", ignore=frozenset({"presence", "member", "history"}))
    by_id = {r["id"]: r for r in listed["rooms"]}
    assert by_id[room["id"]]["members"] == 2 and next(iter(by_id)) == "general"
    await bob.send(type="room_invite", room=room["id"], user=alice.user["id"], ref="i")
    error = await bob.expect("error", ignore=frozenset({"presence", "member", "history"}))
    assert (error["code"], error["ref"]) == ("forbidden", "i")
    await alice.send(type="room_invite", room=room["id"], user="nobody", ref="n")
    assert (await alice.expect("error", ignore=frozenset({"presence"})))["code"] == "unknown_user"


async def test_welcome_lists_unread_private_conversations_until_read(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await bob.aclose()
    await alice.say("d1", "psst", to=bob.user["id"])
    last = (await alice.say("d2", "still there?", to=bob.user["id"]))["id"]
    again, _ = await clients.join(server, token=bob.welcome["token"])
    [direct] = again.welcome["direct"]
    assert (direct["user"], direct["unread"]) == (alice.user, 2)
    await again.send(type="read", room=None, **{"with": alice.user["id"]}, id=last, ref="r")
    read = await again.expect("read")
    assert (read["with"], read["id"], read["ref"]) == (alice.user["id"], last, "r")
    third, _ = await clients.join(server, token=bob.welcome["token"])
    assert third.welcome["direct"] == []


async def test_making_rooms_and_invitations_is_paid_from_one_budget(
    start_server: StartServer, clients: Clients
) -> None:
    """Each room made or invitation sent is a row kept for good: a client
    looping on room_create stores at most the burst."""
    server = await start_server(room_rate=0.01, room_burst=3)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    first = await create_room(alice, "one")
    await create_room(alice, "two", ref="c2")
    await alice.send(type="room_invite", room=first["id"], user=bob.user["id"], ref="i")
    assert (await alice.expect("member"))["ref"] == "i"
    await alice.send(type="room_create", name="four", kind="public", ref="c4")
    refused = await alice.expect("error")
    assert (refused["code"], refused["ref"]) == ("rate_limited", "c4")
    assert refused["retry_after"] > 0
    await bob.send(type="rooms")
    listed = await bob.expect("rooms", ignore=frozenset({"presence", "member", "history"}))
    assert sorted(r["name"] for r in listed["rooms"]) == ["general", "one", "two"]
