"""The delivery check: did every acked message reach every other client
exactly once, in id order, and never come back to the one that sent it?

With rooms (``bench.py --rooms N``) each acked message belongs to one room
(an index 0..N-1) and each inbox to the rooms its client is in: it expects
only those rooms' messages, and a delivery of any other room's message is
``leaked``, a privacy failure. An inbox without rooms expects every message.

Synchronous and free of I/O, so it can be fed acks and deliveries directly
(tests/test_bench_checker.py). A runner keeps one ``Inbox`` per client and
one ``DeliveryCheck`` for the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

#: The figures ``DeliveryCheck.tally`` returns, in report order.
DELIVERY_COUNTS = (
    "expected_receivers",
    "expected_senders",
    "received_receivers",
    "received_senders",
    "lost",
    "clients_with_loss",
    "duplicated",
    "echoes",
    "out_of_order",
    "unacked_deliveries",
    "leaked",
)


@dataclass(slots=True)
class Inbox:
    """What one client received of this run's messages."""

    #: None for a client that only listens; its sender index otherwise.
    sender_index: int | None = None
    #: With rooms: the indices of the rooms the client is in (None: every message).
    rooms: frozenset[int] | None = None
    seen: set[int] = field(default_factory=set)
    #: Highest id received so far: a lower one arriving later is out of order.
    last_id: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    echoes: int = 0

    def deliver(self, msg_id: int, sender: int) -> bool:
        """Record one delivery of message ``msg_id`` from sender ``sender``.

        True when it is a first delivery to this client (the one that counts
        as received); an echo of its own message or a repeat is only counted.
        """
        if sender == self.sender_index:
            self.echoes += 1
            return False
        if msg_id in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(msg_id)
        if msg_id < self.last_id:
            self.out_of_order += 1
        else:
            self.last_id = msg_id
        return True


@dataclass(slots=True)
class DeliveryCheck:
    """The acked messages of a run, and the comparison of each inbox with them."""

    #: message id -> index of the sender it was acked to.
    acked: dict[int, int] = field(default_factory=dict)
    acked_by_sender: Counter[int] = field(default_factory=Counter)
    #: With rooms: message id -> index of the room it was sent to, and acks per room.
    room_of: dict[int, int] = field(default_factory=dict)
    acked_by_room: Counter[int] = field(default_factory=Counter)

    def ack(self, msg_id: int, sender: int, room: int | None = None) -> None:
        """Record that ``sender`` was acked message ``msg_id`` (sent to ``room``)."""
        if msg_id not in self.acked:
            self.acked[msg_id] = sender
            self.acked_by_sender[sender] += 1
            if room is not None:
                self.room_of[msg_id] = room
                self.acked_by_room[room] += 1

    def expected_for(self, inbox: Inbox) -> int:
        """How many first deliveries this inbox should get: every ack of its
        rooms (or every ack) but its own. A sender sends only to its rooms."""
        own = 0 if inbox.sender_index is None else self.acked_by_sender[inbox.sender_index]
        if inbox.rooms is None:
            return len(self.acked) - own
        return sum(self.acked_by_room[room] for room in inbox.rooms) - own

    def tally(self, inboxes: Iterable[Inbox]) -> dict[str, int]:
        """Counts over all inboxes (those of clients that were welcomed).

        ``lost`` is acked messages an inbox should have and lacks;
        ``unacked_deliveries`` is deliveries of messages nobody was acked;
        ``leaked`` is deliveries of acked messages of a room the inbox is not in.
        """
        acked_ids = set(self.acked)
        own: dict[int, set[int]] = {}
        for msg_id, sender in self.acked.items():
            own.setdefault(sender, set()).add(msg_id)
        by_room: dict[int, set[int]] = {}
        for msg_id, room in self.room_of.items():
            by_room.setdefault(room, set()).add(msg_id)
        totals: Counter[str] = Counter()
        for inbox in inboxes:
            role = "receivers" if inbox.sender_index is None else "senders"
            mine = set() if inbox.sender_index is None else own.get(inbox.sender_index, set())
            if inbox.rooms is None:
                readable = acked_ids
            else:
                readable = set().union(*(by_room.get(room, set()) for room in inbox.rooms))
                totals["leaked"] += len((inbox.seen & acked_ids) - readable)
            expected = readable - mine
            missing = len(expected - inbox.seen)
            totals[f"expected_{role}"] += len(expected)
            totals[f"received_{role}"] += len(expected & inbox.seen)
            totals["lost"] += missing
            totals["clients_with_loss"] += missing > 0
            totals["unacked_deliveries"] += len(inbox.seen - acked_ids)
            totals["duplicated"] += inbox.duplicates
            totals["echoes"] += inbox.echoes
            totals["out_of_order"] += inbox.out_of_order
        return {name: totals[name] for name in DELIVERY_COUNTS}
