"""``bench.py --rooms N`` without a server: who goes to which room, what
each client expects, and that a message reaching a client outside its room
is counted as a leak (scripts/benchlib/rooms.py, checker.py, load.py).
The run against a real server is in test_bench_load.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import bench_rooms
import pytest

from benchlib.checker import DeliveryCheck, Inbox
from benchlib.config import parse_args
from benchlib.lines import make_payload
from benchlib.load import Bench, send_frame, summarize, take_frames, verdict
from benchlib.rooms import (
    Answers,
    RoomSetupFailed,
    receiver_rooms,
    room_of_slot,
    sender_rooms,
    setup_lines,
)
from quartchat.models import Message, User
from quartchat.protocol import MessageFrame, encode

URL = ("--url", "ws://127.0.0.1:1/ws")


def test_receivers_are_spread_round_robin_and_every_slot_is_in_its_senders_rooms() -> None:
    per_room = Counter(room for i in range(1000) for room in receiver_rooms(i, 100))
    assert per_room == dict.fromkeys(range(100), 10)
    senders, rooms, planned = 10, 100, 4000
    mine = [sender_rooms(p, senders, rooms, planned) for p in range(senders)]
    for slot in range(planned):
        assert room_of_slot(slot, rooms) in mine[slot % senders]
    # 10 senders over 100 rooms: each room has exactly one sender.
    assert sorted(r for rs in mine for r in rs) == list(range(100))
    # One room: its one sender sends everything there.
    assert sender_rooms(0, 1, 1, 4000) == frozenset({0})
    # A short schedule: a sender joins only the rooms it will send to.
    assert sender_rooms(1, 2, 100, 6) == frozenset({1, 3, 5})


def check_with_rooms() -> tuple[DeliveryCheck, dict[str, Inbox]]:
    """Rooms 0 and 1; sender 0 is in both, sender 1 in room 1; a receiver in each."""
    check = DeliveryCheck()
    check.ack(1, 0, room=0)
    check.ack(2, 1, room=1)
    check.ack(3, 0, room=1)
    inboxes = {
        "s0": Inbox(sender_index=0, rooms=frozenset({0, 1})),
        "s1": Inbox(sender_index=1, rooms=frozenset({1})),
        "r0": Inbox(rooms=frozenset({0})),
        "r1": Inbox(rooms=frozenset({1})),
    }
    return check, inboxes


def test_each_client_expects_the_messages_of_its_rooms_only() -> None:
    check, inboxes = check_with_rooms()
    expected = {name: check.expected_for(inbox) for name, inbox in inboxes.items()}
    assert expected == {"s0": 1, "s1": 1, "r0": 1, "r1": 2}
    for name, arrivals in {"s0": [(2, 1)], "s1": [(3, 0)], "r0": [(1, 0)]}.items():
        for msg_id, sender in arrivals:
            inboxes[name].deliver(msg_id, sender)
    inboxes["r1"].deliver(2, 1)
    inboxes["r1"].deliver(3, 0)
    counts = check.tally(inboxes.values())
    assert (counts["lost"], counts["leaked"], counts["unacked_deliveries"]) == (0, 0, 0)
    assert counts["received_receivers"] == counts["expected_receivers"] == 3
    assert counts["received_senders"] == counts["expected_senders"] == 2


def test_a_message_of_another_room_is_a_leak_not_a_delivery() -> None:
    check, inboxes = check_with_rooms()
    inboxes["r0"].deliver(1, 0)
    inboxes["r0"].deliver(2, 1)  # room 1's message, to room 0's receiver
    counts = check.tally([inboxes["r0"]])
    assert counts["leaked"] == 1
    assert counts["received_receivers"] == counts["expected_receivers"] == 1
    assert counts["lost"] == 0


def test_without_rooms_nothing_changes() -> None:
    check = DeliveryCheck()
    check.ack(1, 0)
    check.ack(2, 1)
    inbox = Inbox()
    inbox.deliver(1, 0)
    assert check.expected_for(inbox) == 2
    assert check.tally([inbox])["leaked"] == 0
    assert send_frame("o", "t") == '{"type": "send", "client_offset": "o", "text": "t", "to": null}'


def test_a_send_to_a_room_names_it() -> None:
    assert '"room": "r123"' in send_frame("o", "t", "r123")


def test_the_options_are_checked() -> None:
    cfg = parse_args([*URL, "--rooms", "4", "--receivers", "8", "--senders", "2", "--settle", "3"])
    assert (cfg.rooms, cfg.settle) == (4, 3.0)
    assert parse_args([*URL]).rooms == 0
    for bad in (["--rooms", "-1"], ["--rooms", "2", "--ingest"], ["--rooms", "2", "--storm", "3"]):
        with pytest.raises(SystemExit):
            parse_args([*URL, *bad])


def test_clients_of_a_rooms_run_know_their_rooms() -> None:
    cfg = parse_args([*URL, "--rooms", "3", "--receivers", "7", "--senders", "2", "--rate", "6"])
    made = Bench.create(cfg, run="abc123", room_ids=["ra", "rb", "rc"])
    assert [c.inbox.rooms for c in made.receivers] == [frozenset({i % 3}) for i in range(7)]
    # 60 slots over 2 senders and 3 rooms: both senders send to all three.
    assert [c.inbox.rooms for c in made.senders] == [frozenset({0, 1, 2})] * 2


def message_frame(made: Bench, msg_id: int, room: str) -> str:
    sender = User(id="u-0", nick=made.senders[0].nick)
    text = make_payload(made.prefix, 0, msg_id, 100.0)
    message = Message(msg_id, sender, None, text, ts=1, room=room)
    return encode(MessageFrame(message, name_general=True))


def test_a_run_with_a_leak_fails() -> None:
    cfg = parse_args([*URL, "--rooms", "2", "--receivers", "2", "--senders", "1"])
    made = Bench.create(cfg, run="abc123", room_ids=["ra", "rb"])
    for client in made.clients:
        client.welcomed = True
    made.ledger.sent = 2
    made.ledger.check.ack(1, 0, room=0)
    made.ledger.check.ack(2, 0, room=1)
    in_a, in_b = made.receivers
    take_frames(made, in_a, [message_frame(made, 1, "ra")], now=101.0)
    take_frames(made, in_b, [message_frame(made, 1, "ra"), message_frame(made, 2, "rb")], 101.0)
    res = summarize(made)
    assert res["deliveries"]["leaked"] == 1
    assert res["deliveries"]["lost"] == 0
    assert "1 deliveries to clients not in the message's room" in res["failures"]
    deliveries = made.ledger.check.tally(c.inbox for c in made.clients)
    assert "1 deliveries to clients not in the message's room" in verdict(made, deliveries)


def test_setup_waits_for_the_member_answer_and_the_backlog() -> None:
    answers = Answers({"join-0": "ra", "join-1": "rb"}, backlog=True)
    member = '{"type":"member","event":"join","room":{"id":"%s"},"ref":"%s"}'
    frame = "\n".join(
        [
            '{"type":"presence","event":"join","user":{"id":"u","nick":"n"}}',
            member % ("ra", "join-0"),
            '{"type":"history","messages":[],"has_more":false,"room":"ra"}',
            member % ("rb", "join-1"),
        ]
    )
    for obj in setup_lines(frame):
        answers.take(obj)
    assert not answers.done()  # room rb's backlog has not come
    answers.take({"type": "history", "messages": [], "room": "rb"})
    assert answers.done()


def test_a_refused_create_fails_the_setup() -> None:
    answers = Answers({"create-0": None}, backlog=False)
    answers.take({"type": "member", "room": {"id": "ra"}, "ref": "other"})
    assert answers.rooms == {"create-0": None}
    with pytest.raises(RoomSetupFailed, match="room_taken"):
        answers.take({"type": "error", "code": "room_taken", "ref": "create-0"})


def fake_bench(cpu: float, p99: float) -> dict[str, object]:
    """The parts of a bench.py JSON that bench_rooms.py reads."""
    return {
        "pass": True,
        "failures": [],
        "server": {"cpu_pct_send": cpu, "cpu_pct_send_and_drain": cpu, "rss_mb_end": 80.0},
        "deliveries": {"received": 100, "expected": 100, "lost": 0, "leaked": 0},
        "clients": {"receivers_connected": 10},
        "sending": {"acked": 10},
        "latency_ms": {"delivery": {"p50": 1.0, "p99": p99}},
        "generator": {"loop_lag_ms": {"p99": 2.0}},
    }


def test_the_comparison_runs_each_case_as_the_issue_says_and_takes_the_ratio() -> None:
    plan = bench_rooms.parse_args(["--rates", "100,400", "--repeat", "2"])
    argv = bench_rooms.bench_argv("A", 400, 20, "ws://127.0.0.1:9/ws", 7, Path("/tmp/x.json"))
    opts = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert (opts["--rooms"], opts["--receivers"], opts["--senders"], opts["--rate"]) == (
        "100",
        "1000",
        "10",
        "400",
    )
    rows = [
        bench_rooms.summarize("A", 100, fake_bench(12.0, 30.0)),
        bench_rooms.summarize("A", 100, fake_bench(14.0, 50.0)),
        bench_rooms.summarize("B", 100, fake_bench(10.0, 20.0)),
        bench_rooms.summarize("B", 100, fake_bench(10.0, 40.0)),
        bench_rooms.summarize("A", 400, fake_bench(50.0, 30.0)),
        bench_rooms.summarize("B", 400, fake_bench(25.0, 20.0)),
    ]
    at_100, at_400 = bench_rooms.ratios(plan, rows)
    assert (at_100["cpu_pct_send_a"], at_100["ratio"], at_100["within"]) == (13.0, 1.3, False)
    assert (at_100["p99_ms_a"], at_100["p99_ms_b"]) == (40.0, 30.0)
    assert (at_400["ratio"], at_400["within"]) == (2.0, False)
    assert bench_rooms.summarize("B", 100, None)["passed"] is False
