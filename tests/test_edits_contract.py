"""Edits and deletes as entries of the log, one contract on SQLite and Redis.

What a user relies on, whichever backend runs: an edit changes the message
everyone reads from then on and reaches live connections and replays as an
entry of its own; only the author edits, and only a live message; a retried
edit is stored once; a deleted message reads as deleted everywhere and its
edits' texts go with it; replays carry these entries to exactly those who
may see the message; unread counts count messages, not entries.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import pytest
import trio

from quartchat.backends.base import (
    Bucket,
    Committed,
    EditRefused,
    Identities,
    LogEntry,
    MessageLog,
    RateLimited,
    RoomUnread,
    Unread,
)
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.sqlite_log import SqliteLog
from quartchat.errors import StoreError
from quartchat.models import GENERAL, Draft, Kind, Message, Posted, User

#: Seconds any one wait may take before the test fails (against hanging).
PATIENCE = 20
DESIGN = "r-design"


class ChatLog(MessageLog, Identities, Protocol):
    """Both backends' logs: the log and its identities in one object."""


@pytest.fixture(params=["sqlite", "redis"])
async def log(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[ChatLog]:
    """A log of the backend under test, started with ``nursery.start``."""
    opened: ChatLog
    if request.param == "redis":
        opened = RedisLog(request.getfixturevalue("redis_url"), prefix="test:")
    else:
        opened = await SqliteLog.open(tmp_path / "chat.db")
    await nursery.start(opened.run)
    yield opened
    await opened.aclose()


_offsets = itertools.count()


async def users(log: ChatLog, *nicks: str) -> list[User]:
    return [(await log.create_user(nick))[0] for nick in nicks]


async def say(
    log: ChatLog,
    sender: User,
    text: str,
    to: User | None = None,
    *,
    room: str | None = None,
    mentions: tuple[str, ...] = (),
) -> Message:
    offset = f"s{next(_offsets)}"
    draft = Draft(sender, offset, text, to, origin="w.1", room=room, mentions=mentions)
    [posted] = await log.append([draft])
    assert isinstance(posted, Posted) and not posted.duplicate, posted
    return posted.message


def edit_of(
    target: Message,
    text: str,
    *,
    sender: User | None = None,
    offset: str | None = None,
    mentions: tuple[str, ...] = (),
) -> Draft:
    """The draft of an edit of ``target`` (its room and recipient copied, as
    the hub does), by its author unless ``sender`` is given."""
    return Draft(
        sender or target.sender,
        offset or f"e{next(_offsets)}",
        text,
        target.recipient,
        origin="w.2",
        room=target.room,
        mentions=mentions,
        target=target.id,
    )


async def edit(
    log: ChatLog, target: Message, text: str, *, mentions: tuple[str, ...] = ()
) -> Message:
    """Edit ``target`` as its author (see :func:`edit_of`); the edit entry."""
    [posted] = await log.append([edit_of(target, text, mentions=mentions)])
    assert isinstance(posted, Posted) and not posted.duplicate, posted
    return posted.message


@asynccontextmanager
async def following(log: ChatLog) -> AsyncIterator[AsyncIterator[list[LogEntry]]]:
    """The log's tail from its newest id, closed on the way out."""
    tail = log.tail(await log.last_id())
    try:
        yield tail
    finally:
        close = getattr(tail, "aclose", None)
        if close is not None:
            await close()


async def take(tail: AsyncIterator[list[LogEntry]], count: int) -> list[Committed]:
    """The next ``count`` entries from a tail, all messages or entries."""
    got: list[LogEntry] = []
    with trio.fail_after(PATIENCE):
        while len(got) < count:
            got += await anext(tail)
    assert len(got) == count, "the tail gave more than was committed"
    assert all(isinstance(entry, Committed) for entry in got), got
    return [entry for entry in got if isinstance(entry, Committed)]


# ----- edits --------------------------------------------------------------


async def test_an_edit_changes_the_message_as_it_is_now_and_is_an_entry_of_its_own(
    log: ChatLog,
) -> None:
    alice, bob = await users(log, "alice", "bob")
    async with following(log) as tail:
        sent = await say(log, alice, "helo @bob", room=DESIGN, mentions=(bob.id,))
        entry = await edit(log, sent, "hello @bob, fixed", mentions=(bob.id,))
        followed = await take(tail, 2)

    assert entry.kind is Kind.EDIT and entry.target == sent.id
    assert entry.id > sent.id and entry.id == await log.last_id()
    assert (entry.sender, entry.recipient, entry.room) == (alice, None, DESIGN)
    assert (entry.text, entry.mentions) == ("hello @bob, fixed", (bob.id,))
    assert entry.ts >= sent.ts
    assert [(c.message, c.origin) for c in followed] == [(sent, "w.1"), (entry, "w.2")]

    now = await log.get(sent.id)
    assert now is not None
    assert (now.kind, now.id, now.sender, now.room) == (Kind.MESSAGE, sent.id, alice, DESIGN)
    assert (now.text, now.edited_ts, now.deleted) == ("hello @bob, fixed", entry.ts, False)
    assert await log.get(entry.id) is None  # an entry is no message
    assert await log.history(bob.id, None, 10, None, DESIGN) == ([now], False)
    replay = await log.read_after(bob.id, 0, 10, {GENERAL, DESIGN})
    assert replay.messages == [now, entry]
    assert replay.last_id == entry.id and replay.complete

    second = await edit(log, sent, "third time")
    again = await log.get(sent.id)
    assert again is not None
    assert (again.text, again.edited_ts, again.mentions) == ("third time", second.ts, ())


async def test_a_private_edit_reaches_the_two_ends_of_the_conversation_only(
    log: ChatLog,
) -> None:
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    sent = await say(log, alice, "psst", to=bob)
    entry = await edit(log, sent, "psst, edited")
    assert (entry.recipient, entry.room, entry.kind) == (bob, None, Kind.EDIT)
    for viewer in (alice, bob):
        replay = await log.read_after(viewer.id, 0, 10)
        assert [(m.id, m.text) for m in replay.messages] == [
            (sent.id, "psst, edited"),
            (entry.id, "psst, edited"),
        ]
    assert (await log.read_after(carol.id, 0, 10)).messages == []
    page, more = await log.history(bob.id, None, 10, alice.id)
    assert [(m.id, m.text, m.edited_ts) for m in page] == [(sent.id, "psst, edited", entry.ts)]
    assert not more
    assert await log.history(carol.id, None, 10, alice.id) == ([], False)


async def test_an_edit_of_anything_but_a_live_message_of_the_sender_is_refused_and_stores_nothing(
    log: ChatLog,
) -> None:
    alice, bob, mod = await users(log, "alice", "bob", "mod")
    mine = await say(log, alice, "mine")
    theirs = await say(log, bob, "bob's")
    an_edit = await edit(log, mine, "mine, edited")
    gone = await say(log, alice, "soon gone")
    assert await log.delete(gone.id, mod) is not None
    last = await log.last_id()
    missing = Message(last + 100, alice, None, "never stored", 0)
    drafts = [
        edit_of(theirs, "not yours", sender=alice, offset="x-theirs"),
        edit_of(an_edit, "an entry is no message", offset="x-entry"),
        edit_of(gone, "back from the dead", offset="x-gone"),
        edit_of(missing, "no such message", offset="x-missing"),
    ]
    results = await log.append([*drafts, Draft(alice, "fine", "a send beside them", None)])
    assert [type(r) for r in results[:4]] == [EditRefused] * 4
    fine = results[4]
    assert isinstance(fine, Posted) and fine.message.id == last + 1  # no id was spent
    assert await log.last_id() == last + 1
    assert await log.get(theirs.id) == theirs
    now_mine = await log.get(mine.id)
    assert now_mine is not None and now_mine.text == "mine, edited"
    now = await log.get(gone.id)
    assert now is not None and (now.deleted, now.text) == (True, "")
    # A refused edit stored nothing, not even its offset: a retry of it, now
    # aimed at a message of the sender's, is a new edit.
    [retry] = await log.append([edit_of(mine, "mine, again", offset="x-theirs")])
    assert isinstance(retry, Posted) and not retry.duplicate
    assert retry.message.target == mine.id


async def test_a_retried_edit_is_stored_once(log: ChatLog) -> None:
    [alice] = await users(log, "alice")
    sent = await say(log, alice, "typo")
    draft = edit_of(sent, "no typo", offset="edit-1")
    first, duplicate = await log.append([draft, draft])
    [later] = await log.append([edit_of(sent, "something else", offset="edit-1")])
    assert isinstance(first, Posted) and not first.duplicate
    for retry in (duplicate, later):
        assert isinstance(retry, Posted) and retry.duplicate
        assert retry.message == first.message
    assert await log.last_id() == first.message.id
    now = await log.get(sent.id)
    assert now is not None and (now.text, now.edited_ts) == ("no typo", first.message.ts)
    replay = await log.read_after(alice.id, 0, 10)
    assert [m.id for m in replay.messages] == [sent.id, first.message.id]


async def test_an_edit_spends_the_send_bucket_as_a_send_does(log: ChatLog) -> None:
    [alice] = await users(log, "alice")
    sent = await say(log, alice, "one")
    limit = Bucket(f"send:{alice.id}", 0.001, 1)  # one token, no refill within the test
    first, second = await log.append([edit_of(sent, "two"), edit_of(sent, "three")], [limit, limit])
    assert isinstance(first, Posted) and isinstance(second, RateLimited)
    now = await log.get(sent.id)
    assert now is not None and now.text == "two"
    assert await log.last_id() == first.message.id


async def test_an_edit_moves_the_mentions_to_its_new_text(log: ChatLog) -> None:
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    sent = await say(log, alice, "@bob look", room=DESIGN, mentions=(bob.id,))
    await edit(log, sent, "@carol look", mentions=(carol.id,))
    now = await log.get(sent.id)
    assert now is not None and now.mentions == (carol.id,)
    assert await log.unread(bob.id, {DESIGN: 0}, {}) == Unread({DESIGN: RoomUnread(1, 0)}, {})
    assert await log.unread(carol.id, {DESIGN: 0}, {}) == Unread({DESIGN: RoomUnread(1, 1)}, {})


# ----- deletes ------------------------------------------------------------


async def test_a_delete_wipes_the_message_and_its_edits_and_is_an_entry_of_its_own(
    log: ChatLog,
) -> None:
    alice, bob, mod = await users(log, "alice", "bob", "mod")
    sent = await say(log, alice, "regrettable", room=DESIGN)
    edits = [await edit(log, sent, f"still regrettable {i}") for i in range(2)]
    kept = await say(log, bob, "kept", room=DESIGN)
    async with following(log) as tail:
        entry = await log.delete(sent.id, mod, origin="w.9")
        [followed] = await take(tail, 1)

    assert entry is not None
    assert (entry.kind, entry.target, entry.by, entry.text) == (Kind.DELETE, sent.id, mod, "")
    assert (entry.sender, entry.recipient, entry.room) == (alice, None, DESIGN)
    assert entry.id == await log.last_id() and entry.id > kept.id
    assert (followed.message, followed.origin) == (entry, "w.9")

    now = await log.get(sent.id)
    assert now is not None
    assert (now.id, now.sender, now.room, now.deleted, now.text) == (
        sent.id,
        alice,
        DESIGN,
        True,
        "",
    )
    assert await log.history(bob.id, None, 10, None, DESIGN) == ([now, kept], False)
    replay = await log.read_after(bob.id, 0, 10, {DESIGN})
    assert [m.id for m in replay.messages] == [sent.id, *(e.id for e in edits), kept.id, entry.id]
    assert [m.text for m in replay.messages] == ["", "", "", "kept", ""]
    assert (replay.messages[0], replay.messages[-1]) == (now, entry)
    assert all(m.kind is Kind.EDIT and m.target == sent.id for m in replay.messages[1:3])


async def test_only_a_live_message_can_be_deleted_and_only_once(log: ChatLog) -> None:
    alice, mod = await users(log, "alice", "mod")
    sent = await say(log, alice, "once")
    an_edit = await edit(log, sent, "once, edited")
    assert await log.delete(an_edit.id, mod) is None
    assert await log.delete(an_edit.id + 100, mod) is None
    first = await log.delete(sent.id, alice)
    assert first is not None and first.by == alice
    last = await log.last_id()
    assert await log.delete(sent.id, mod) is None
    assert await log.delete(first.id, mod) is None
    assert await log.last_id() == last
    [late] = await log.append([edit_of(sent, "too late")])
    assert isinstance(late, EditRefused)


async def test_a_private_delete_reaches_the_two_ends_only(log: ChatLog) -> None:
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    sent = await say(log, alice, "psst", to=bob)
    entry = await log.delete(sent.id, alice)
    assert entry is not None and (entry.recipient, entry.room) == (bob, None)
    for viewer in (alice, bob):
        replay = await log.read_after(viewer.id, 0, 10)
        assert [(m.id, m.kind, m.deleted) for m in replay.messages] == [
            (sent.id, Kind.MESSAGE, True),
            (entry.id, Kind.DELETE, False),
        ]
    assert (await log.read_after(carol.id, 0, 10)).messages == []
    page, _ = await log.history(bob.id, None, 10, alice.id)
    assert [(m.id, m.deleted, m.text) for m in page] == [(sent.id, True, "")]


# ----- replay and unread ----------------------------------------------------


async def test_replay_carries_entries_in_id_order_to_those_who_may_see_their_target(
    log: ChatLog,
) -> None:
    """A member of a room and both ends of a private conversation get the
    edits and deletes after their cursor, in id order among the messages,
    counted toward the limit; someone outside the room or the conversation
    gets none of them."""
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    in_design = await say(log, alice, "design", room=DESIGN)
    private = await say(log, alice, "to bob", to=bob)
    public = await say(log, carol, "general")
    cursor = public.id
    design_edit = await edit(log, in_design, "design, edited")
    private_edit = await edit(log, private, "to bob, edited")
    later = await say(log, carol, "general, later")
    design_delete = await log.delete(in_design.id, alice)
    private_delete = await log.delete(private.id, alice)
    assert design_delete is not None and private_delete is not None

    bobs = await log.read_after(bob.id, cursor, 10, {GENERAL, DESIGN})
    expected = [design_edit.id, private_edit.id, later.id, design_delete.id, private_delete.id]
    assert [m.id for m in bobs.messages] == expected
    assert bobs.complete and bobs.last_id == private_delete.id
    newest = await log.read_after(bob.id, cursor, 2, {GENERAL, DESIGN})
    assert [m.id for m in newest.messages] == expected[-2:] and not newest.complete

    carols = await log.read_after(carol.id, cursor, 10, {GENERAL})
    assert [m.id for m in carols.messages] == [later.id]
    alices_general_only = await log.read_after(alice.id, cursor, 10)
    assert [m.id for m in alices_general_only.messages] == [
        private_edit.id,
        later.id,
        private_delete.id,
    ]


async def test_unread_counts_neither_entries_nor_deleted_messages(log: ChatLog) -> None:
    me, ann = await users(log, "me", "ann")
    mention = await say(log, ann, "@me hi", room=DESIGN, mentions=(me.id,))
    plain = await say(log, ann, "plain", room=DESIGN)
    await say(log, ann, "another", room=DESIGN)
    await edit(log, plain, "plain, edited")
    await edit(log, plain, "plain, edited twice")
    assert await log.delete(mention.id, ann) is not None
    first_dm = await say(log, ann, "dm 1", to=me)
    second_dm = await say(log, ann, "dm 2", to=me)
    await edit(log, first_dm, "dm 1, edited")
    assert await log.delete(second_dm.id, ann) is not None
    assert await log.unread(me.id, {DESIGN: 0, GENERAL: 0}, {ann.id: 0}) == Unread(
        {DESIGN: RoomUnread(2, 0), GENERAL: RoomUnread(0, 0)}, {ann.id: 1}
    )


async def test_a_store_error_is_not_an_edit_refusal(log: ChatLog) -> None:
    """An edit whose own values cannot be stored fails as a send would, as a
    StoreError: the client may retry it; a refusal says it never will."""
    [alice] = await users(log, "alice")
    sent = await say(log, alice, "fine")
    [bad] = await log.append([edit_of(sent, "half a pair \ud800")])
    assert isinstance(bad, StoreError)
    now = await log.get(sent.id)
    assert now is not None and (now.text, now.edited_ts) == ("fine", None)
