"""The broker's room index, synchronously: a room's events reach the
subscriptions in it and no other, changes relayed before a subscription's
rooms were known are applied on top of them, and a closed one gets nothing."""

from __future__ import annotations

from quartchat.broker import Deliver, Event, LocalBroker


def collector() -> tuple[list[str], Deliver]:
    got: list[str] = []

    def deliver(event: Event) -> None:
        got.append(event.line)

    return got, deliver


def test_a_rooms_event_reaches_its_members_only() -> None:
    broker = LocalBroker()
    alice_got, alice = collector()
    bob_got, bob = collector()
    watcher_got, watcher = collector()
    broker.subscribe(watcher)
    broker.subscribe_user(alice, "alice").adopt(["design"])
    broker.subscribe_user(bob, "bob").adopt([])
    broker.publish(Event("in design", room="design"))
    broker.publish(Event("in general", room="general"))
    broker.publish(Event("no room"))
    assert alice_got == ["in design", "in general", "no room"]
    assert bob_got == ["in general", "no room"]
    assert watcher_got == ["in design", "in general", "no room"]
    assert broker.subscribers_in("design") == 1


def test_enter_and_exit_follow_the_users_every_subscription() -> None:
    broker = LocalBroker()
    tab1_got, tab1 = collector()
    tab2_got, tab2 = collector()
    broker.subscribe_user(tab1, "bob").adopt([])
    broker.subscribe_user(tab2, "bob").adopt([])
    broker.enter("bob", "design")
    broker.publish(Event("1", room="design"))
    broker.exit("bob", "design")
    broker.publish(Event("2", room="design"))
    assert tab1_got == tab2_got == ["1"]
    assert broker.subscribers_in("design") == 0


def test_changes_before_adopt_are_applied_on_top_of_the_rooms_read() -> None:
    """The rooms come from a directory read after subscribing: a kick
    relayed in between must win over the read that still had the room, and a
    join relayed in between must count though the read missed it."""
    broker = LocalBroker()
    got, deliver = collector()
    subscription = broker.subscribe_user(deliver, "bob")
    broker.exit("bob", "old")  # relayed before the rooms were known
    broker.enter("bob", "new")
    broker.publish(Event("before adopt", room="new"))  # not yet: replay covers it
    rooms = subscription.adopt(["old", "general"])
    assert rooms == {"new", "general"}
    broker.publish(Event("old room", room="old"))
    broker.publish(Event("new room", room="new"))
    assert got == ["new room"]


def test_private_events_reach_their_users_and_a_closed_subscription_nothing() -> None:
    broker = LocalBroker()
    alice_got, alice = collector()
    carol_got, carol = collector()
    subscription = broker.subscribe_user(alice, "alice")
    subscription.adopt(["design"])
    broker.subscribe_user(carol, "carol").adopt([])
    broker.publish(Event("to alice", only_users=frozenset({"alice", "bob"})))
    subscription.close()
    subscription.close()  # twice is fine
    broker.publish(Event("to alice again", only_users=frozenset({"alice"})))
    broker.publish(Event("design", room="design"))
    broker.enter("alice", "other")
    assert alice_got == ["to alice"]
    assert carol_got == []
    assert broker.subscribers_in("design") == 0
