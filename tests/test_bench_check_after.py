"""``bench.py --check-after``: receivers keep their frames during the run and
check them afterwards, with the same verdicts and latencies as checking each
frame when it came (scripts/benchlib/load.py, ``check_recorded``)."""

from __future__ import annotations

from benchlib.config import parse_args
from benchlib.lines import make_payload
from benchlib.load import Bench, check_recorded, take_frames
from quartchat.models import Message, User
from quartchat.protocol import MessageFrame, PresenceNotice, encode


def bench(*extra: str) -> Bench:
    cfg = parse_args(["--url", "ws://127.0.0.1:1/ws", "--receivers", "2", "--senders", "1", *extra])
    made = Bench.create(cfg, run="abc123")
    made.ledger.check.ack(1, 0)
    made.ledger.check.ack(2, 0)
    for client in made.clients:
        client.welcomed = True
    return made


def frame(bench: Bench, *ids: int) -> str:
    """One server frame: a presence line, then messages ``ids`` from sender 0."""
    sender = User(id="u-0", nick=bench.senders[0].nick)
    lines = [encode(PresenceNotice(event="join", user=User(id="u-9", nick="z")))]
    for msg_id in ids:
        text = make_payload(bench.prefix, 0, msg_id, 100.0 + msg_id)
        lines.append(encode(MessageFrame(Message(msg_id, sender, None, text, ts=1))))
    return "\n".join(lines)


def outcome(bench: Bench) -> tuple[dict[str, int], list[float]]:
    tally = bench.ledger.check.tally(c.inbox for c in bench.clients)
    return tally, sorted(bench.ledger.delivery_latencies)


def test_recorded_frames_are_checked_as_they_would_have_been() -> None:
    results = []
    for extra in ((), ("--check-after",)):
        run = bench(*extra)
        first, second = run.receivers
        take_frames(run, first, [frame(run, 1, 2)], now=103.0)
        take_frames(run, second, [frame(run, 2)], now=104.0)  # message 1 lost
        take_frames(run, second, [frame(run, 2, 1)], now=105.0)  # 2 repeated, then 1 late
        if extra:
            assert first.messages_in == 2  # what the drain goes by, before any check
            assert run.ledger.received == 0
        check_recorded(run)
        assert first.recorded is None  # checked, and let go
        results.append(outcome(run))
    live, after = results
    assert after == live
    tally, latencies = after
    assert (tally["lost"], tally["duplicated"], tally["out_of_order"]) == (0, 1, 1)
    assert latencies == [1.0, 2.0, 2.0, 4.0]  # each from the time its frame came
