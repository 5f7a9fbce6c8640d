"""Rooms in the page (issue 21): a private room two people share and a third
never sees; counts and badges that survive a reload; creating, browsing,
joining, inviting and leaving; each room's own messages, drafts and typing.
Each flow runs at desktop and phone sizes (the room list is a drawer there)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Users
from .rooms_helpers import (
    PHONE,
    TIMEOUT,
    ask_server,
    close_sidebar,
    create_room,
    invite,
    join_from_directory,
    open_general,
    open_room,
    room_entry,
    room_id,
    sidebar,
)

pytestmark = pytest.mark.browser

SIZES = {"desktop": {}, "phone": PHONE}


@pytest.fixture(params=sorted(SIZES))
def size(request: pytest.FixtureRequest) -> dict[str, Any]:
    return SIZES[request.param]


def test_a_private_room_of_two_is_never_seen_by_a_third(users: Users, size: dict[str, Any]) -> None:
    alice = users.new("alice", **size)
    bob = users.new("bob", **size)
    carol = users.new("carol", **size)
    a, c = alice.page, carol.page
    expect(a.locator("#online li")).to_have_count(3, timeout=TIMEOUT)

    secret = create_room(alice, "secret plans", "private", "just the two of us")
    expect(a.locator("#room-title")).to_have_text("secret plans (private)")
    expect(a.locator("#room-topic")).to_have_text("just the two of us")
    before = alice.send("written before bob came")
    expect(before).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    before_id = int(before.get_attribute("data-id") or 0)

    invite(alice, "bob")
    # Bob's list gains the room; the backlog fills it when he opens it.
    expect(room_entry(bob, "secret plans")).to_have_count(1, timeout=TIMEOUT)
    open_room(bob, "secret plans")
    expect(bob.msg("written before bob came")).to_have_count(1, timeout=TIMEOUT)
    reply = bob.send("only we can read this")
    expect(reply).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    reply_id = int(reply.get_attribute("data-id") or 0)
    expect(alice.msg("only we can read this")).to_have_count(1, timeout=TIMEOUT)

    # Something public afterwards, which carol gets: she is not lagging behind.
    open_general(alice)
    alice.send("public after the secret")
    expect(carol.msg("public after the secret")).to_have_count(1, timeout=TIMEOUT)
    hidden = {before_id, reply_id}
    texts = ("written before bob came", "only we can read this")

    def carol_sees_nothing() -> None:
        assert not hidden & set(c.evaluate("window.quartchat.state.messageIds"))
        for text in texts:
            expect(c.locator(".msg-text").filter(has_text=text)).to_have_count(0)
        assert [r["id"] for r in c.evaluate("window.quartchat.state.rooms")] == ["general"]
        sidebar(carol)
        expect(room_entry(carol, "secret plans")).to_have_count(0)

    carol_sees_nothing()
    c.reload()
    carol.wait_connected()
    expect(carol.msg("public after the secret")).to_have_count(1, timeout=TIMEOUT)
    carol_sees_nothing()

    # Asked directly: not in her history, her directory, nor its members.
    got = ask_server(c, [
        {"type": "history", "limit": 200},
        {"type": "history", "room": secret, "limit": 200},
        {"type": "rooms", "ref": "dir"},
        {"type": "members", "room": secret, "ref": "who"},
        {"type": "room_join", "room": secret, "ref": "join"},
    ])  # fmt: skip
    ids = {
        m["id"] for f in got if f["type"] in ("history", "message") for m in f.get("messages", [f])
    }
    assert not hidden & ids
    assert all(secret not in str(f) or f["type"] == "error" for f in got), got
    errors = [f for f in got if f["type"] == "error"]
    assert {e.get("code") for e in errors} <= {"unknown_room", "not_member", "forbidden"}, errors
    assert len(errors) == 3, errors  # history, members and join, each refused
    directory = next(f for f in got if f["type"] == "rooms")
    assert [r["id"] for r in directory["rooms"]] == ["general"]

    # Carol's directory in the page lists nothing to join.
    sidebar(carol)
    c.locator("#room-browse").click()
    expect(c.locator("#directory-status")).to_contain_text("No other public rooms", timeout=TIMEOUT)
    expect(c.locator("#directory-list li")).to_have_count(0)
    c.locator("#directory-close").click()
    expect(c.locator("#directory-dialog")).to_be_hidden()


def test_badges_and_counts_survive_a_reload(users: Users, size: dict[str, Any]) -> None:
    alice = users.new("alice", **size)
    bob = users.new("bob")
    a = alice.page
    create_room(alice, "design", "public", "pixels")
    open_general(alice)
    join_from_directory(bob, "design")
    expect(bob.page.locator("#room-topic")).to_have_text("pixels")
    for text in ("first in design", "second in design", "@alice what do you think?"):
        expect(bob.send(text)).to_have_attribute("data-state", "sent", timeout=TIMEOUT)

    def expect_counts(unread: str, mention: bool) -> None:
        """The room's entry (in the drawer on a phone, so maybe off screen)."""
        entry = room_entry(alice, "design")
        badge = entry.locator(".badge")
        expect(badge).to_have_js_property("hidden", not unread, timeout=TIMEOUT)
        if unread:
            expect(badge).to_have_text(f"{unread} unread")
        expect(entry.locator(".mention-badge")).to_have_js_property("hidden", not mention)
        expect(a).to_have_title(f"({unread}) quartchat" if unread else "quartchat", timeout=TIMEOUT)

    expect_counts("3", True)
    assert a.evaluate("window.quartchat.state.rooms")[1]["mentions"] == 1
    a.reload()
    alice.wait_connected()
    expect_counts("3", True)
    sidebar(alice)
    alice.screenshot("rooms-phone" if size else "rooms-badges")

    # A second tab opens the room: the first one's badge clears (a read frame).
    second = alice.open_page()
    alice.wait_connected(second)
    open_room(alice, "design", second)
    expect(alice.msg("@alice what do you think?", second)).to_have_class(
        re.compile(r"\bmentioned\b"), timeout=TIMEOUT
    )
    expect(alice.msg("@alice what do you think?", second).locator(".mention-tag")).to_have_text(
        "mentions you"
    )
    expect_counts("", False)
    second.close()
    a.reload()
    alice.wait_connected()
    expect_counts("", False)

    # One more while away in general: one unread, no mention.
    bob.send("one more")
    expect_counts("1", False)


def test_create_browse_join_and_leave(users: Users, size: dict[str, Any]) -> None:
    alice = users.new("alice", **size)
    bob = users.new("bob", **size)
    a, b = alice.page, bob.page
    create_room(alice, "design")
    alice.send("hello design")
    # A name taken, or one that only looks alike, is refused by the form.
    for name, error in (("Design", "exists already"), ("!!!", "cannot be used")):
        sidebar(alice)
        a.locator("#room-new").click()
        a.locator("#room-name").fill(name)
        a.locator("#room-submit").click()
        expect(a.locator("#room-error")).to_contain_text(error, timeout=TIMEOUT)
        expect(a.locator("#room-name")).to_have_attribute("aria-invalid", "true")
        expect(a.locator("#room-name")).to_be_focused()
        a.keyboard.press("Escape")
        expect(a.locator("#room-dialog")).to_be_hidden()

    # General has no room bar, so nothing to leave.
    expect(b.locator("#room-bar")).to_be_hidden()
    join_from_directory(bob, "design")
    expect(bob.msg("hello design")).to_have_count(1, timeout=TIMEOUT)
    expect(alice.notices("bob joined")).to_have_count(1, timeout=TIMEOUT)
    # Not twice: the directory no longer lists it.
    sidebar(bob)
    b.locator("#room-browse").click()
    expect(b.locator("#directory-status")).to_contain_text("No other public rooms", timeout=TIMEOUT)
    b.keyboard.press("Escape")
    expect(b.locator("#room-browse")).to_be_focused()
    close_sidebar(bob)

    bob.send("bye for now")
    b.locator("#room-leave").click()
    expect(b.locator("#leave-dialog")).to_be_visible()
    expect(b.locator("#leave-help")).to_contain_text("join it again")
    b.locator("#leave-confirm").click()
    expect(room_entry(bob, "design")).to_have_count(0, timeout=TIMEOUT)
    expect(b.locator("#room-bar")).to_be_hidden()
    expect(b.locator("#input")).to_have_attribute("placeholder", "Message everyone")
    expect(alice.notices("bob left")).to_have_count(1, timeout=TIMEOUT)
    alice.send("after bob left")
    open_general(alice)
    alice.send("public again")
    expect(bob.msg("public again")).to_have_count(1, timeout=TIMEOUT)
    expect(b.locator(".msg-text").filter(has_text="after bob left")).to_have_count(0)
    # And he can come back: the backlog has what he missed.
    join_from_directory(bob, "design")
    expect(bob.msg("after bob left")).to_have_count(1, timeout=TIMEOUT)


def test_each_room_keeps_its_messages_draft_and_typing(users: Users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    create_room(alice, "design")
    open_general(alice)
    join_from_directory(bob, "design")
    bob.send("in design only")
    open_general(bob)
    bob.send("in general only")
    expect(alice.msg("in general only")).to_have_count(1, timeout=TIMEOUT)
    expect(alice.msg("in design only")).to_have_count(0)
    open_room(alice, "design")
    expect(alice.msg("in design only")).to_have_count(1, timeout=TIMEOUT)
    expect(alice.msg("in general only")).to_have_count(0)

    # A draft per room, kept across a reload; typing names the room.
    a.locator("#input").fill("half a thought for design")
    expect(b.locator("#typing")).to_have_text("", timeout=TIMEOUT)  # bob is in general
    open_room(bob, "design")
    a.locator("#input").press_sequentially(" more")
    expect(b.locator("#typing")).to_have_text("alice is typing…", timeout=TIMEOUT)
    open_general(alice)
    expect(a.locator("#input")).to_have_value("")
    a.reload()
    alice.wait_connected()
    open_room(alice, "design")
    expect(a.locator("#input")).to_have_value("half a thought for design more")
    typing = [f for f in alice.frames_sent if f.get("type") == "typing" and f.get("active")]
    assert typing and all(f.get("room") for f in typing), typing
    sends = [f for f in alice.frames_sent + bob.frames_sent if f.get("type") == "send"]
    assert sends and all(f.get("room") for f in sends), sends

    # Written offline in a room: sent there once the connection is back.
    alice.context.set_offline(True)
    pending = alice.send("queued for design")
    expect(pending).to_have_attribute("data-state", "pending")
    stored = a.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))")
    assert [(e["text"], e["room"]) for e in stored] == [
        ("queued for design", room_id(alice, "design"))
    ]
    alice.context.set_offline(False)
    alice.wait_connected()
    expect(alice.msg("queued for design")).to_have_attribute("data-state", "sent", timeout=20_000)
    expect(bob.msg("queued for design")).to_have_count(1, timeout=TIMEOUT)
    open_general(bob)
    expect(bob.msg("queued for design")).to_have_count(0)
