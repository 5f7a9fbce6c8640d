"""The bench's delivery check (scripts/benchlib/checker.py), fed by hand.

Two senders (0 and 1) and one receiver; sender 0 was acked ids 1 and 3,
sender 1 id 2. Each test breaks one promise and expects exactly that count.
"""

from __future__ import annotations

import json

from benchlib.checker import DeliveryCheck, Inbox
from benchlib.workers import inbox_from, inbox_record

#: message id -> the sender it was acked to.
ACKS = {1: 0, 2: 1, 3: 0}


def run_check(deliveries: dict[str, list[tuple[int, int]]]) -> tuple[dict[str, int], DeliveryCheck]:
    """Ack ACKS, deliver (id, sender) pairs to each named inbox in order, tally."""
    check = DeliveryCheck()
    for msg_id, sender in ACKS.items():
        check.ack(msg_id, sender)
    inboxes = {"s0": Inbox(sender_index=0), "s1": Inbox(sender_index=1), "r": Inbox()}
    for name, arrivals in deliveries.items():
        for msg_id, sender in arrivals:
            inboxes[name].deliver(msg_id, sender)
    return check.tally(inboxes.values()), check


#: What a correct server delivers: every message to everyone but its sender, in order.
PERFECT = {"s0": [(2, 1)], "s1": [(1, 0), (3, 0)], "r": [(1, 0), (2, 1), (3, 0)]}


def problems(counts: dict[str, int]) -> dict[str, int]:
    names = ("lost", "clients_with_loss", "duplicated", "echoes", "out_of_order")
    return {name: counts[name] for name in (*names, "unacked_deliveries") if counts[name]}


def test_a_perfect_run_has_no_problems_and_counts_every_expected_delivery() -> None:
    counts, _ = run_check(PERFECT)
    assert problems(counts) == {}
    assert counts["expected_receivers"] == counts["received_receivers"] == 3
    # Each sender expects every acked message but its own: 1 for s0, 2 for s1.
    assert counts["expected_senders"] == counts["received_senders"] == 3


def test_a_missing_delivery_is_lost_on_that_client() -> None:
    counts, _ = run_check({**PERFECT, "r": [(1, 0), (3, 0)]})
    assert problems(counts) == {"lost": 1, "clients_with_loss": 1}
    assert counts["received_receivers"] == 2


def test_a_repeated_delivery_is_duplicated_and_received_once() -> None:
    counts, _ = run_check({**PERFECT, "r": [(1, 0), (2, 1), (2, 1), (3, 0)]})
    assert problems(counts) == {"duplicated": 1}
    assert counts["received_receivers"] == 3


def test_a_message_back_to_its_sender_is_an_echo_not_a_delivery() -> None:
    counts, _ = run_check({**PERFECT, "s0": [(1, 0), (2, 1)]})
    assert problems(counts) == {"echoes": 1}
    assert counts["received_senders"] == 3


def test_a_lower_id_after_a_higher_one_is_out_of_order_but_not_lost() -> None:
    counts, _ = run_check({**PERFECT, "r": [(2, 1), (1, 0), (3, 0)]})
    assert problems(counts) == {"out_of_order": 1}


def test_a_delivery_nobody_was_acked_is_counted() -> None:
    counts, _ = run_check({**PERFECT, "r": [(1, 0), (2, 1), (3, 0), (4, 1)]})
    assert problems(counts) == {"unacked_deliveries": 1}


def test_an_ack_repeated_for_one_id_is_one_expected_message() -> None:
    check = DeliveryCheck()
    check.ack(1, 0)
    check.ack(1, 0)
    check.ack(2, 1)
    assert check.expected_for(Inbox()) == 2
    assert check.expected_for(Inbox(sender_index=0)) == 1
    counts = check.tally([Inbox(sender_index=1)])
    assert counts["lost"] == 1


def test_an_inbox_sent_back_by_a_worker_process_tallies_the_same() -> None:
    """--procs: workers send each inbox as JSON; every count survives the trip."""
    check = DeliveryCheck()
    for msg_id, sender in ACKS.items():
        check.ack(msg_id, sender)
    inbox = Inbox()
    for msg_id, sender in [(2, 1), (1, 0), (1, 0), (4, 1)]:
        inbox.deliver(msg_id, sender)
    back = inbox_from(json.loads(json.dumps(inbox_record(inbox))))
    assert back == inbox
    assert problems(check.tally([back])) == {
        "lost": 1,
        "clients_with_loss": 1,
        "duplicated": 1,
        "out_of_order": 1,
        "unacked_deliveries": 1,
    }
