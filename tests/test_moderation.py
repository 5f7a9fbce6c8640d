"""Moderation over a real socket, on SQLite and on Redis (two workers,
clients alternating between them): roles, kicks, mutes and bans as the
contract's table says, checked on the server whoever asks and wherever;
what a muted or banned user sends stores nothing; a ban closes every
connection of the user with 4009 and keeps their ``hello`` out; every
action is in the audit."""

from __future__ import annotations

import time

import trio
from test_api import KEY, message, post
from test_edits import QUIET, in_room, say_there
from test_jwt import SECRET, claims, hs256, login
from test_rooms import create_room

from chatclient import ChatClient
from conftest import Clients, RunningServer, StartServer
from quartchat.backends.moderation import Sanction
from quartchat.errors import BANNED, UNKNOWN_TOKEN


async def grant_admin(server: RunningServer, client: ChatClient) -> None:
    """What ``quartchat admin grant`` does, then every worker's view reads it."""
    await server.hub.backends.moderation.set_admin(client.user["id"], True)
    for worker in server.workers:
        await worker.hub.sanctions.refresh()


async def audit(server: RunningServer) -> list[tuple[str, str, str | None, str | None]]:
    records = await server.hub.backends.moderation.audit(None, 50)
    return [(r.entry.actor, r.entry.action, r.entry.user, r.entry.room) for r in records][::-1]


async def test_the_owner_makes_a_moderator_whom_the_room_is_told_of(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    room = await create_room(alice, "design")
    await in_room([bob, carol], room)
    await carol.send(type="role", room=room["id"], user=bob.user["id"], role="moderator", ref="c")
    refused = await carol.expect("error", ignore=QUIET)
    assert (refused["code"], refused["ref"]) == ("forbidden", "c")

    await alice.send(type="role", room=room["id"], user=bob.user["id"], role="moderator", ref="r")
    answer = await alice.expect("role", ignore=QUIET)
    assert (answer["ref"], answer["role"], answer["user"]) == ("r", "moderator", bob.user)
    for client in (bob, carol):
        notice = await client.expect("role", ignore=QUIET)
        assert notice["user"] == bob.user and notice["by"] == alice.user and "ref" not in notice
    await carol.send(type="members", room=room["id"], ref="m")
    members = await carol.expect("members", ignore=QUIET | {"role"})
    roles = {m["id"]: m["role"] for m in members["members"]}
    assert roles[bob.user["id"]] == "moderator" and roles[alice.user["id"]] == "owner"
    # Nobody changes the owner's role, not even the owner.
    await alice.send(type="role", room=room["id"], user=alice.user["id"], role="member")
    assert (await alice.expect("error", ignore=QUIET))["code"] == "forbidden"
    assert (alice.user["id"], "role", bob.user["id"], room["id"]) in await audit(server)


async def test_a_moderator_kicks_a_member_who_then_gets_nothing_of_the_room(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    room = await create_room(alice, "design")
    await in_room([bob, carol], room)
    await alice.send(type="role", room=room["id"], user=bob.user["id"], role="moderator")
    await bob.expect("role", ignore=QUIET)
    # A member kicks nobody; a moderator does not kick the owner; general keeps everyone.
    for kicker, target, where in (
        (carol, bob, room["id"]),
        (bob, alice, room["id"]),
        (bob, carol, "general"),
    ):
        await kicker.send(type="kick", room=where, user=target.user["id"], ref="k")
        assert (await kicker.expect("error", ignore=QUIET | {"role"}))["code"] == "forbidden"

    await bob.send(type="kick", room=room["id"], user=carol.user["id"], ref="k1")
    answer = await bob.expect("member", ignore=QUIET | {"role"})
    assert (answer["event"], answer["ref"], answer["user"]) == ("kick", "k1", carol.user)
    kicked = await carol.expect("member", ignore=QUIET | {"role"})
    assert (kicked["event"], kicked["user"], kicked["by"]) == ("kick", carol.user, bob.user)
    await say_there(alice, room, "a1", "after the kick")
    await bob.expect("message", ignore=QUIET | {"role"})
    assert await carol.quiet(0.5, ignore=QUIET | {"role"}) == []
    await carol.send(type="send", client_offset="c1", text="let me back", room=room["id"])
    assert (await carol.expect("error"))["code"] == "not_member"
    assert (bob.user["id"], "kick", carol.user["id"], room["id"]) in await audit(server)


async def test_a_muted_user_stores_nothing_there_until_the_mute_is_lifted(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "design")
    await in_room([bob], room)
    said = await say_there(bob, room, "b0", "before")
    await alice.send(type="mute", room=room["id"], user=bob.user["id"], seconds=600, ref="m")
    answer = await alice.expect("mute", ignore=QUIET | {"message"})
    until = answer["until"]
    assert answer["ref"] == "m" and abs(until - (time.time() + 600) * 1000) < 5000
    told = await bob.expect("mute", ignore=QUIET)
    assert (told["room"], told["until"], told["by"]) == (room["id"], until, alice.user)

    stored = server.count()
    await bob.send(type="typing", active=True, room=room["id"])
    await bob.send(type="send", client_offset="b1", text="still here", room=room["id"])
    await bob.send(type="edit", target=said, client_offset="b2", text="edited")
    for offset in ("b1", "b2"):
        error = await bob.expect("error")
        assert (error["code"], error["client_offset"], error["until"]) == ("muted", offset, until)
    assert server.count() == stored
    assert await alice.quiet(0.3, ignore=frozenset({"presence"})) == []  # no typing either
    await bob.say("b3", "general is fine")  # a mute holds in its room only
    await alice.send(type="mute", room=room["id"], user=bob.user["id"], seconds=0)
    assert (await bob.expect("mute", ignore=QUIET))["until"] == 0
    await say_there(bob, room, "b4", "back")
    actions = [a for _, a, _, _ in await audit(server)]
    assert actions == ["mute", "unmute"]


async def test_only_an_admin_mutes_across_the_chat_and_a_member_mutes_nobody(
    server: RunningServer, clients: Clients
) -> None:
    admin, _ = await clients.join(server, nick="root")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    room = await create_room(carol, "carols")
    await in_room([bob], room)
    await bob.send(type="mute", room=None, user=carol.user["id"], seconds=60, ref="x")
    assert (await bob.expect("error", ignore=QUIET))["code"] == "forbidden"
    await bob.send(type="mute", room=room["id"], user=carol.user["id"], seconds=60, ref="y")
    assert (await bob.expect("error", ignore=QUIET))["code"] == "forbidden"

    await grant_admin(server, admin)
    await admin.send(type="mute", room=None, user=bob.user["id"], seconds=60, ref="z")
    assert (await admin.expect("mute", ignore=QUIET))["room"] is None
    for frame in (
        {"type": "send", "client_offset": "g", "text": "hi"},
        {"type": "send", "client_offset": "r", "text": "hi", "room": room["id"]},
        {"type": "send", "client_offset": "p", "text": "hi", "to": carol.user["id"]},
    ):
        await bob.send(**frame)
        assert (await bob.expect("error", ignore=QUIET | {"mute"}))["code"] == "muted"


async def test_a_ban_closes_every_connection_of_the_user_and_keeps_them_out(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(jwt_secret=SECRET, api_key=KEY)
    admin, welcome = await login(server, clients, hs256(claims(sub="boss", roles=["admin"])))
    assert welcome["admin"] is True
    bob, _ = await clients.join(server, nick="bob")
    tabs = [bob] + [(await clients.join(server, token=bob.welcome["token"]))[0] for _ in range(3)]
    await bob.send(type="ban", user=welcome["user"]["id"], seconds=None, ref="b")
    assert (await bob.expect("error", ignore=QUIET))["code"] == "forbidden"

    started = trio.current_time()
    await admin.send(type="ban", user=bob.user["id"], seconds=None, ref="b1")
    answer = await admin.expect("ban", ignore=QUIET)
    assert (answer["ref"], answer["user"], answer["until"]) == ("b1", bob.user, None)
    for tab in tabs:  # on both workers
        assert await tab.close_code(within=2) == BANNED
    assert trio.current_time() - started < 1.0  # the issue: within a second

    again = await clients.connect(server)
    await again.send(type="hello", token=bob.welcome["token"])
    assert await again.close_code() == BANNED
    status, _, _ = await post(server, message("as bob?", id="acct-bob"))
    assert status == 200  # another user: the API is not shut
    await admin.send(type="ban", user=bob.user["id"], seconds=0, ref="b2")
    assert (await admin.expect("ban", ignore=QUIET | {"message"}))["until"] == 0
    back, _ = await clients.join(server, token=bob.welcome["token"])
    assert back.welcome["user"]["id"] == bob.user["id"]
    assert [a for _, a, _, _ in await audit(server)] == ["ban", "unban"]


async def test_a_banned_account_logs_in_and_posts_through_the_api_no_more(
    start_server: StartServer, clients: Clients
) -> None:
    """The admin granted by the board (as ``quartchat admin grant`` does),
    the banned user a JWT's: on Redis on the other worker."""
    server = await start_server(jwt_secret=SECRET, api_key=KEY)
    bob, welcome = await login(server, clients, hs256(claims(sub="acct-bob", name="bob")))
    admin, _ = await clients.join(server, nick="root")
    assert admin.welcome.get("admin", False) is False
    await grant_admin(server, admin)
    await admin.send(type="ban", user=welcome["user"]["id"], seconds=3600, ref="b")
    answer = await admin.expect("ban", ignore=QUIET)
    assert abs(answer["until"] - (time.time() + 3600) * 1000) < 5000
    assert await bob.close_code(within=2) == BANNED

    stored = server.count()
    status, _, _ = await post(server, message("as bob", id="acct-bob"))
    assert status == 403 and server.count() == stored
    again = await clients.connect(server)
    await again.send(type="hello", jwt=hs256(claims(sub="acct-bob")))
    assert await again.close_code() == BANNED
    await admin.send(type="ban", user=admin.user["id"], seconds=60, ref="self")
    assert (await admin.expect("error", ignore=QUIET))["code"] == "forbidden"


async def test_an_admin_who_never_said_a_word_is_not_pruned_as_silent(
    start_server: StartServer, clients: Clients
) -> None:
    """Granted by ``quartchat admin grant``, kept by the hourly pruning of
    identities that never sent a message (here every 0.2 s), offline too."""
    server = await start_server(silent_user_ttl=0.2)
    admin, _ = await clients.join(server, nick="root")
    guest, _ = await clients.join(server, nick="guest")
    await grant_admin(server, admin)
    for client in (admin, guest):
        await client.aclose()
    identities = server.hub.backends.identities
    with trio.fail_after(10):  # the guest goes at a pruning after the leave
        # Polling: the pruning has no event a test can wait on.
        while await identities.get_user(guest.user["id"]) is not None:  # noqa: ASYNC110
            await trio.sleep(0.1)
    back, _ = await clients.join(server, token=admin.welcome["token"])
    assert back.welcome["user"]["id"] == admin.user["id"] and back.welcome["admin"] is True
    gone = await clients.connect(server)
    await gone.send(type="hello", token=guest.welcome["token"])
    assert await gone.close_code() == UNKNOWN_TOKEN


async def test_a_ban_the_bus_never_announced_still_closes_within_a_second(
    server: RunningServer, clients: Clients
) -> None:
    """Written to the board alone (as if its announcement were lost): every
    worker's periodic read of the sanctions in force finds it."""
    bob, _ = await clients.join(server, nick="bob")
    tabs = [bob] + [(await clients.join(server, token=bob.welcome["token"]))[0] for _ in range(2)]
    started = trio.current_time()
    ban = Sanction("ban", bob.user["id"], None, None, "an-admin")
    await server.hub.backends.moderation.impose(ban)
    for tab in tabs:
        assert await tab.close_code(within=2) == BANNED
    assert trio.current_time() - started < 1.0


async def test_moderation_frames_about_a_private_room_tell_a_stranger_nothing(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    room = await create_room(alice, "secret", "private")
    said = await say_there(alice, room, "a1", "hush")
    bob_id = bob.user["id"]
    for frame in (
        {"type": "role", "room": room["id"], "user": alice.user["id"], "role": "member"},
        {"type": "kick", "room": room["id"], "user": alice.user["id"]},
        {"type": "mute", "room": room["id"], "user": alice.user["id"], "seconds": 60},
        {"type": "mute", "room": room["id"], "user": bob_id, "seconds": 60},
    ):
        await bob.send(**frame, ref="x")
        error = await bob.expect("error", ignore=QUIET)
        assert (error["code"], error["ref"]) == ("unknown_room", "x"), frame
    await bob.send(type="delete", target=said, ref="d")
    assert (await bob.expect("error", ignore=QUIET))["code"] == "unknown_message"
    await bob.send(type="edit", target=said, client_offset="e", text="mine now")
    assert (await bob.expect("error", ignore=QUIET))["code"] == "unknown_room"
    assert await audit(server) == []
    assert await alice.quiet(0.3, ignore=QUIET) == []
