"""``bench.py --rooms N``: the message run spread over N public rooms.

Before anyone else connects, one setup client creates the rooms (each
``room_create`` with a ``ref``, answered by a ``member`` frame that names
the new room's id) and closes: its user stays the rooms' owner, offline.
Receiver i then joins room i % N; message slot s of the send schedule goes
to room s % N, so the sender that has slot s joins every room its slots
name. A client's join waits for both answers the server gives a joining
member: the ``member`` frame with its ``ref``, and the room's backlog as a
``history`` frame with that ``room``.

Rooms are indices 0..N-1 here and in the delivery check
(``checker.DeliveryCheck``); their ids are only for the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from .fastws import Closed, FastClient, open_fast

#: ``room_create`` frames the setup client keeps unanswered at a time.
CREATE_WINDOW = 8
#: Seconds the setup client has for connecting and creating every room.
SETUP_TIMEOUT = 120.0
#: Seconds the setup client waits for the server's answer to its close.
CLOSE_WAIT = 3.0
#: Frames read while waiting for an answer before giving up on it.
MAX_SETUP_FRAMES = 100_000
#: Lines of these types are decoded while rooms are set up; others are passed on.
SETUP_TYPES = ('"type":"member"', '"type":"history"', '"type":"error"', '"type":"welcome"')


class RoomSetupFailed(Exception):
    """A room could not be created or joined; ``label`` says why."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


def receiver_rooms(index: int, rooms: int) -> frozenset[int]:
    """The room of receiver ``index``: round-robin over the rooms."""
    return frozenset({index % rooms})


def room_of_slot(slot: int, rooms: int) -> int:
    """The room message ``slot`` of the schedule goes to."""
    return slot % rooms


def sender_rooms(position: int, senders: int, rooms: int, planned: int) -> frozenset[int]:
    """The rooms the sender at ``position`` sends to: those of slots
    position, position + senders, ... (one period is ``rooms`` steps)."""
    slots = range(position, min(planned, position + senders * rooms), senders)
    return frozenset(room_of_slot(slot, rooms) for slot in slots)


def room_name(run: str, index: int) -> str:
    return f"bench-{run}-{index}"


def create_frame(name: str, ref: str) -> str:
    return json.dumps(
        {"type": "room_create", "name": name, "kind": "public", "topic": "", "ref": ref}
    )


def join_frame(room_id: str, ref: str) -> str:
    return json.dumps({"type": "room_join", "room": room_id, "ref": ref})


def setup_lines(text: str) -> list[dict[str, Any]]:
    """The member, history, error and welcome objects in one server frame."""
    found = []
    for line in text.split("\n"):
        if any(kind in line for kind in SETUP_TYPES):
            obj = json.loads(line)
            if isinstance(obj, dict):
                found.append(obj)
    return found


class Answers:
    """What a client waits for while it sets up rooms: for each ref, the
    ``member`` answer and (for a join) the backlog ``history`` of its room."""

    def __init__(self, refs: dict[str, str | None], backlog: bool) -> None:
        #: ref -> room id (None until a create is answered).
        self.rooms = dict(refs)
        self.members: set[str] = set()
        self.backlogs: set[str] = set()
        self.backlog = backlog

    def take(self, obj: dict[str, Any]) -> None:
        """Note one decoded line; raise ``RoomSetupFailed`` on an error answer."""
        kind, ref = obj.get("type"), obj.get("ref")
        if kind == "error" and ref in self.rooms:
            raise RoomSetupFailed(f"{ref}: {obj.get('code')}")
        if kind == "member" and ref in self.rooms:
            room = obj.get("room")
            room_id = room.get("id") if isinstance(room, dict) else None
            if not isinstance(room_id, str):
                raise RoomSetupFailed(f"{ref}: member answer without a room id")
            self.rooms[ref] = room_id
            self.members.add(ref)
        elif kind == "history" and obj.get("room") is not None:
            self.backlogs.add(str(obj["room"]))

    def done(self) -> bool:
        if len(self.members) < len(self.rooms):
            return False
        return not self.backlog or all(r in self.backlogs for r in self.rooms.values())


async def await_answers(
    raw: FastClient, answers: Answers, on_frame: Callable[[str, float], None]
) -> None:
    """Read frames (each also given to ``on_frame``) until ``answers`` is done."""
    frames = 0
    while not answers.done():
        if frames >= MAX_SETUP_FRAMES:
            raise RoomSetupFailed("no answer")
        texts = await raw.next_texts()
        now = trio.current_time()
        for text in texts:
            on_frame(text, now)
            for obj in setup_lines(text):
                answers.take(obj)
        frames += max(len(texts), 1)


async def join_rooms(
    raw: FastClient,
    room_ids: list[str],
    rooms: frozenset[int],
    on_frame: Callable[[str, float], None],
) -> None:
    """Join ``rooms`` (indices into ``room_ids``) on a welcomed connection:
    all joins at once, then wait for every member answer and backlog."""
    refs: dict[str, str | None] = {f"join-{index}": room_ids[index] for index in sorted(rooms)}
    for ref, room_id in refs.items():
        assert room_id is not None
        await raw.send_text(join_frame(room_id, ref))
    await await_answers(raw, Answers(refs, backlog=True), on_frame)


async def create_rooms(url: str, hello: str, run: str, count: int) -> list[str]:
    """Connect one setup client, create ``count`` public rooms, close; their ids."""
    ids: list[str] = []
    with trio.fail_after(SETUP_TIMEOUT):
        raw = await open_fast(url)
        try:
            await raw.send_text(hello)
            await await_answers(raw, Welcomed(), lambda _text, _now: None)
            for start in range(0, count, CREATE_WINDOW):
                batch = range(start, min(count, start + CREATE_WINDOW))
                refs: dict[str, str | None] = {f"create-{i}": None for i in batch}
                for i in batch:
                    await raw.send_text(create_frame(room_name(run, i), f"create-{i}"))
                answers = Answers(refs, backlog=False)
                await await_answers(raw, answers, lambda _text, _now: None)
                ids += [answers.rooms[f"create-{i}"] or "" for i in batch]
            await close_cleanly(raw)
        finally:
            await raw.aclose()
    return ids


async def close_cleanly(raw: FastClient) -> None:
    """Send our close and read (bounded) until the server's answer."""
    with trio.move_on_after(CLOSE_WAIT):
        await raw.close()
        try:
            while True:
                await raw.next_texts()
        except (Closed, OSError, trio.BrokenResourceError):
            return


class Welcomed(Answers):
    """Waits for ``welcome`` alone."""

    def __init__(self) -> None:
        super().__init__({}, backlog=False)
        self.welcomed = False

    def take(self, obj: dict[str, Any]) -> None:
        if obj.get("type") == "welcome":
            self.welcomed = True

    def done(self) -> bool:
        return self.welcomed
