"""A connection storm: many new users at once (issue 8).

New identities are committed in shared transactions, each welcome lists
everyone online from fragments encoded once per user, and presence notices
go out in batches. None of that may change what a client learns: every new
user has a committed row before its welcome, and every client's picture of
who is online (its welcome's list, then the presence objects after it) is
right after joins, leaves and renames.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from fakesession import FakeTransport, open_session, running_hub, wait_for
from quartchat.announcer import MAX_BATCH_BYTES, Announcer, PresenceBatch
from quartchat.broker import Event
from quartchat.config import Settings
from quartchat.models import User
from quartchat.presence import Presence
from quartchat.protocol import EncodedUsers, Limits, PresenceNotice, Welcome, encode
from quartchat.store import AsyncStore, Store

ALICE, BOB, CAROL = User("u-alice", "alice"), User("u-bob", "bob"), User("u-carol", "carol")


# ----- new identities ------------------------------------------------------


async def test_concurrent_new_users_share_commits_and_all_have_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    original = Store.create_users

    def counted(self: Store, nicks: list[str]) -> Any:
        batches.append(len(nicks))
        return original(self, nicks)

    monkeypatch.setattr(Store, "create_users", counted)
    store = await AsyncStore.open(tmp_path / "chat.db")
    made: dict[str, tuple[User, str]] = {}

    async def create(nick: str) -> None:
        made[nick] = await store.create_user(nick)

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(create, f"user{i}")
    assert sum(batches) == 40
    assert len(batches) < 40  # shared transactions, not one each
    for nick, (user, token) in made.items():
        assert user.nick == nick
        assert await store.user_by_token(token) == user
    assert len({user.id for user, _ in made.values()}) == 40
    await store.aclose()


async def test_a_new_user_who_leaves_before_the_writer_is_not_stored(tmp_path: Path) -> None:
    store = await AsyncStore.open(tmp_path / "chat.db")
    made: list[tuple[User, str]] = []
    leaver = trio.CancelScope()

    async def create(nick: str, scope: trio.CancelScope) -> None:
        with scope:
            made.append(await store.create_user(nick))

    async with trio.open_nursery() as nursery, store._write:  # the writer is busy meanwhile
        nursery.start_soon(create, "leaves", leaver)
        nursery.start_soon(create, "stays", trio.CancelScope())
        await trio.testing.wait_all_tasks_blocked()
        leaver.cancel()
        await trio.testing.wait_all_tasks_blocked()
    assert [user.nick for user, _ in made] == ["stays"]
    rows = store.sync._writer.execute("SELECT nick FROM users").fetchall()
    assert [row[0] for row in rows] == ["stays"]
    await store.aclose()


# ----- the welcome's online list -------------------------------------------

LIMITS = Limits(2000, 32, 10.0, 20, 50.0, 100, 65536, 200)


def test_an_encoded_online_list_makes_the_same_welcome() -> None:
    online = [ALICE, User("u-ü", 'zoë "z"\n')]
    as_records = Welcome(ALICE, "t", online, 7, "e", False, LIMITS)
    as_text = Welcome(ALICE, "t", EncodedUsers.of(online), 7, "e", False, LIMITS)
    assert encode(as_text) == encode(as_records)
    assert json.loads(encode(as_text)) == as_records.wire() == as_text.wire()


def test_the_presence_list_follows_joins_leaves_and_renames() -> None:
    presence = Presence()

    def listed() -> list[dict[str, str]]:
        return list(json.loads(presence.listed().json))

    def online() -> list[dict[str, str]]:
        return [{"id": u.id, "nick": u.nick} for u in presence.online()]

    assert listed() == online() == []
    presence.add(1, ALICE)
    presence.add(2, BOB)
    presence.add(3, BOB)  # a second tab lists nobody twice
    assert listed() == online()
    presence.rename(ALICE.id, "alice2")
    assert (
        listed() == online() == [{"id": ALICE.id, "nick": "alice2"}, {"id": BOB.id, "nick": "bob"}]
    )
    presence.remove(2, BOB.id)
    assert listed() == online()  # bob still has a tab
    presence.remove(3, BOB.id)
    presence.add(4, CAROL)
    assert listed() == online() == [{"id": ALICE.id, "nick": "alice2"}, _wire(CAROL)]


def _wire(user: User) -> dict[str, str]:
    return {"id": user.id, "nick": user.nick}


# ----- presence notices in batches -------------------------------------------


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    def publish(self, event: Event) -> None:
        self.events.append(event)


def _lines(event: Event) -> list[dict[str, Any]]:
    return _objects(event.line)


def _objects(text: str | None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.split("\n")] if text else []


@asynccontextmanager
async def gathering() -> AsyncIterator[tuple[Announcer, RecordingBus]]:
    """A running announcer whose batches gather for an hour (they go out on
    ``flush``), publishing to a bus that records them."""
    bus = RecordingBus()
    announcer = Announcer(bus, batch=True, window=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(announcer.run)
        yield announcer, bus
        nursery.cancel_scope.cancel()


async def test_notices_during_a_window_go_out_as_one_event_in_order() -> None:
    async with gathering() as (announcer, bus):
        announcer.announce(PresenceNotice("join", ALICE), skip_user=ALICE.id)
        await trio.testing.wait_all_tasks_blocked()  # after a quiet spell: at once
        assert [_lines(e) for e in bus.events] == [[_notice("join", ALICE)]]
        announcer.announce(PresenceNotice("join", BOB), skip_user=BOB.id)
        announcer.announce(PresenceNotice("leave", ALICE), skip_user=ALICE.id)
        announcer.announce(PresenceNotice("join", CAROL), skip_user=CAROL.id)
        await trio.testing.wait_all_tasks_blocked()
        assert len(bus.events) == 1  # gathering until the window ends
        # A nick goes to everyone, the renamed user included: at once, after
        # what was waiting.
        renamed = User(BOB.id, "bobby")
        announcer.announce(PresenceNotice("nick", renamed, old_nick="bob"), skip_user=None)
        batch, nick = bus.events[1:]
        assert _lines(batch) == [
            _notice("join", BOB),
            _notice("leave", ALICE),
            _notice("join", CAROL),
        ]
        assert isinstance(batch, PresenceBatch)
        assert batch.skip_users == {ALICE.id, BOB.id, CAROL.id}
        assert not batch.is_for("x.1", BOB.id)
        assert batch.is_for("x.2", "u-dave")
        assert _lines(nick) == [{**_notice("nick", renamed), "old_nick": "bob"}]
        assert nick.is_for("x.1", BOB.id)


async def test_a_batch_stays_within_its_byte_bound() -> None:
    async with gathering() as (announcer, bus):
        announcer.announce(PresenceNotice("join", ALICE), skip_user=ALICE.id)
        await trio.testing.wait_all_tasks_blocked()
        users = [User(f"u{i:04}", "ü" * 32) for i in range(600)]
        for user in users:
            announcer.announce(PresenceNotice("join", user), skip_user=user.id)
        announcer.flush()
    assert all(len(e.line.encode()) <= MAX_BATCH_BYTES for e in bus.events)
    announced = [line["user"]["id"] for e in bus.events[1:] for line in _lines(e)]
    assert announced == [user.id for user in users]


async def test_a_connection_listed_while_its_join_waits_gets_the_rest_of_that_batch() -> None:
    async with gathering() as (announcer, bus):
        announcer.announce(PresenceNotice("join", CAROL), skip_user=CAROL.id)
        await trio.testing.wait_all_tasks_blocked()  # the first goes at once
        announcer.announce(PresenceNotice("join", ALICE), skip_user=ALICE.id)
        announcer.announce(PresenceNotice("join", BOB), skip_user=BOB.id)
        announcer.listing("a.1")  # alice's list holds alice and bob
        announcer.listing("c.2")  # so does that of carol's new tab
        dave = User("u-dave", "dave")
        announcer.announce(PresenceNotice("join", dave), skip_user=dave.id)
        announcer.listing("b.1")  # bob's holds dave too
        announcer.flush()
    batch = bus.events[1]
    assert isinstance(batch, PresenceBatch)
    assert not batch.is_for("a.1", ALICE.id) and not batch.is_for("b.1", BOB.id)
    assert _objects(batch.part_for("a.1")) == [_notice("join", dave)]
    assert batch.part_for("b.1") is None  # nothing after its list
    assert batch.part_for("a.2") is None  # alice's other tabs were not listed then
    assert not batch.is_for("c.2", CAROL.id) and batch.part_for("c.2") == batch.part_for("a.1")
    assert batch.is_for("c.1", CAROL.id)  # carol's tab that was there before: all of it


async def test_a_connection_skips_batches_published_before_it_reads_its_list() -> None:
    async with gathering() as (announcer, bus):
        announcer.opening("d.1")  # dave subscribed; his list is read later
        announcer.opening("e.1")
        announcer.announce(PresenceNotice("join", ALICE), skip_user=ALICE.id)
        await trio.testing.wait_all_tasks_blocked()  # published at once
        announcer.abandon("e.1")  # erin's start failed
        announcer.listing("d.1")  # dave's list holds alice
        announcer.announce(PresenceNotice("join", BOB), skip_user=BOB.id)
        announcer.flush()
    first, second = bus.events
    assert not first.is_for("d.1", "u-dave") and first.part_for("d.1") is None
    assert first.is_for("x.1", "u-xavier")
    assert second.is_for("d.1", "u-dave")  # announced after his list was read
    assert second.is_for("e.1", "u-erin")
    assert announcer._opening == set()  # nothing left behind


def _notice(event: str, user: User) -> dict[str, Any]:
    return {"type": "presence", "event": event, "user": _wire(user)}


# ----- what clients see ----------------------------------------------------


def view(client: FakeTransport) -> dict[str, str]:
    """Who the client thinks is online: its welcome's list, then presence."""
    (welcome,) = client.of_type("welcome")
    online = {user["id"]: user["nick"] for user in welcome["online"]}
    for frame in client.sent[client.sent.index(welcome) + 1 :]:
        if frame["type"] != "presence":
            continue
        user = frame["user"]
        assert user["id"] != welcome["user"]["id"] or frame["event"] == "nick"
        # Each notice is news: no join of someone shown online, no leave or
        # rename of someone not shown.
        assert (user["id"] in online) == (frame["event"] != "join"), (frame, online)
        if frame["event"] == "leave":
            del online[user["id"]]
        else:
            online[user["id"]] = user["nick"]
    return online


async def test_every_client_of_a_storm_sees_who_is_online(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "chat.db", leave_grace=0)
    async with running_hub(settings) as hub, trio.open_nursery() as nursery:
        clients: list[FakeTransport] = []

        async def connect(i: int) -> None:
            clients.append(await open_session(nursery, hub, f"user{i}"))

        async with trio.open_nursery() as storm:
            for i in range(60):
                storm.start_soon(connect, i)
        await wait_for(lambda: all(c.of_type("welcome") for c in clients))

        async def truth() -> dict[str, str]:
            return {u.id: u.nick for u in await hub.backends.presence.online()}

        async def everyone_agrees() -> None:
            expected = await truth()
            await wait_for(lambda: all(view(c) == expected for c in live))

        live = list(clients)
        await everyone_agrees()
        for client in clients:  # every row was committed before its welcome
            (welcome,) = client.of_type("welcome")
            user = await hub.log.user_by_token(welcome["token"])
            assert user is not None and user.id == welcome["user"]["id"]

        # Leaves, a rename and new joins, all at once.
        for client in live[:10]:
            client._to_server.close()
        live = live[10:]
        await live[0].client_says(type="nick", nick="renamed")
        await wait_for(lambda: any(f["event"] == "nick" for f in live[0].of_type("presence")))
        async with trio.open_nursery() as storm:
            for i in range(60, 80):
                storm.start_soon(connect, i)
        live += clients[60:]
        await wait_for(lambda: all(c.of_type("welcome") for c in live))
        await wait_for(lambda: len(hub.backends.presence._presence) == 70)  # type: ignore[attr-defined]
        await everyone_agrees()
        assert "renamed" in (await truth()).values()

        # A trickle, not a burst, with replays slower than a batch window:
        # batches go out while sessions are between subscribing and reading
        # their list (the first of them with their own join), and while they
        # read it.
        replay = hub.reading.replay

        async def slow_replay(*args: Any) -> Any:
            await trio.sleep(0.25)
            return await replay(*args)

        hub.reading.replay = slow_replay  # type: ignore[method-assign]
        for i in range(80, 120):
            nursery.start_soon(connect, i)
            await trio.sleep(0.01)
        live += clients[80:]
        await wait_for(lambda: all(c.of_type("welcome") for c in live))
        await everyone_agrees()
        nursery.cancel_scope.cancel()


def _whose(frame: dict[str, Any]) -> str | None:
    """The id of the user a frame is about or from."""
    return (frame.get("user") or frame.get("from") or {}).get("id")


async def test_nobody_hears_from_a_user_before_hearing_that_they_joined(tmp_path: Path) -> None:
    """A welcome does not wait for its user's join to go out, so a newcomer
    may type or send while that join still waits in a batch: the batch then
    goes first."""
    # A tiny flush budget makes a batch gather for seconds (batch_window),
    # longer than wait_for waits.
    settings = Settings(db_path=tmp_path / "chat.db", flush_budget=1)
    async with running_hub(settings) as hub, trio.open_nursery() as nursery:
        alice = await open_session(nursery, hub, "alice")
        await wait_for(lambda: alice.of_type("welcome"))
        for says, heard_as in (("typing", "typing"), ("send", "message")):
            bob = await open_session(nursery, hub, f"bob-{says}")
            await wait_for(lambda: bob.of_type("welcome"))  # noqa: B023
            if says == "typing":
                await bob.client_says(type="typing", active=True, to=None)
            else:
                await bob.client_says(type="send", client_offset="c1", text="hi", to=None)
            await wait_for(lambda: alice.of_type(heard_as))  # noqa: B023
            bob_id = bob.of_type("welcome")[0]["user"]["id"]
            about_bob = [f for f in alice.sent if _whose(f) == bob_id]
            assert [f["type"] for f in about_bob] == ["presence", heard_as]
            assert about_bob[0]["event"] == "join"
        nursery.cancel_scope.cancel()
