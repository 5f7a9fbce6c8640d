"""Moderating a room from the page (issue 22): its owner makes someone a
moderator; the moderator deletes another member's message and removes them,
whose page leaves the room; a muted member sees why beside the composer,
before writing and when a send is refused, and stores nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import ChatServer, Users
from .moderation_helpers import by_id, close_members, delete, edit, manage, open_members, sent
from .rooms_helpers import (
    PHONE,
    TIMEOUT,
    create_room,
    join_from_directory,
    open_general,
    open_room,
    room_entry,
    sidebar,
)

pytestmark = pytest.mark.browser

SIZES = {"desktop": {}, "phone": PHONE}


@pytest.fixture(params=sorted(SIZES))
def size(request: pytest.FixtureRequest) -> dict[str, Any]:
    return SIZES[request.param]


def test_a_moderator_removes_someone_and_their_page_leaves_the_room(
    users: Users, size: dict[str, Any]
) -> None:
    alice = users.new("alice")
    bob = users.new("bob", **size)
    carol = users.new("carol", **size)
    a, b, c = alice.page, bob.page, carol.page
    design = create_room(alice, "design")
    join_from_directory(bob, "design")
    join_from_directory(carol, "design")
    spam = sent(carol, "buy cheap watches")
    expect(bob.msg("buy cheap watches")).to_have_count(1, timeout=TIMEOUT)
    # A member cannot delete someone else's message: no button shows.
    by_id(b, spam).hover()
    expect(by_id(b, spam).locator(".msg-delete")).to_be_hidden()

    # The owner makes bob a moderator, from the members dialog.
    open_members(a)
    expect(a.get_by_role("button", name="Manage alice", exact=True)).to_have_count(0)
    manage(a, "bob").get_by_role("button", name="Make moderator").click()
    expect(a.locator("#members-note")).to_have_text("bob is now a moderator.", timeout=TIMEOUT)
    expect(a.locator("#members-list li").filter(has_text="bob")).to_contain_text("moderator")
    # Redrawn with his new role, his actions still open, focus still on them.
    expect(manage(a, "bob").get_by_role("button", name="Make member")).to_be_visible()
    expect(a.get_by_role("button", name="Manage bob", exact=True)).to_be_focused()
    close_members(a)
    expect(bob.notices("alice made you a moderator")).to_have_count(1, timeout=TIMEOUT)
    assert [r["role"] for r in b.evaluate("window.quartchat.state.rooms") if r["id"] == design] == [
        "moderator"
    ]

    # As a moderator, bob deletes carol's message...
    delete(by_id(b, spam))
    for page in (b, c, a):
        expect(by_id(page, spam).locator(".msg-text")).to_have_text(
            "message deleted", timeout=TIMEOUT
        )
    expect(by_id(c, spam).locator(".msg-deleted-note")).to_have_attribute("title", "Deleted by bob")

    # ...and removes her; he may not act on the owner.
    open_members(b)
    expect(b.get_by_role("button", name="Manage alice", exact=True)).to_have_count(0)
    manage(b, "carol").get_by_role("button", name="Remove from room").click()
    expect(b.locator("#members-note")).to_have_text(
        "carol was removed from the room.", timeout=TIMEOUT
    )
    expect(b.locator("#members-list li")).to_have_count(2, timeout=TIMEOUT)
    close_members(b)

    # Carol's page leaves the room: out of her list, general shown instead.
    expect(c.locator("#toast")).to_have_text("bob removed you from design", timeout=TIMEOUT)
    expect(c.locator("#room-bar")).to_be_hidden()
    expect(c.locator("#input")).to_have_attribute("placeholder", "Message everyone")
    assert design not in [r["id"] for r in c.evaluate("window.quartchat.state.rooms")]
    sidebar(carol)
    expect(room_entry(carol, "design")).to_have_count(0)
    expect(alice.notices("bob removed carol")).to_have_count(1, timeout=TIMEOUT)
    # What is said in the room after reaches her no more.
    alice.send("after carol left")
    expect(bob.msg("after carol left")).to_have_count(1, timeout=TIMEOUT)
    c.reload()
    carol.wait_connected()
    assert design not in [r["id"] for r in c.evaluate("window.quartchat.state.rooms")]
    expect(c.locator(".msg-text").filter(has_text="after carol left")).to_have_count(0)


def test_a_muted_member_sees_why_beside_the_composer(users: Users, server: ChatServer) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    create_room(alice, "design")
    join_from_directory(bob, "design")
    earlier = sent(bob, "written before the mute")
    open_general(bob)

    open_members(a)
    manage(a, "bob").get_by_role("button", name="Mute 10 min").click()
    expect(a.locator("#members-note")).to_have_text(
        re.compile(r"^bob is muted here until \S"), timeout=TIMEOUT
    )
    close_members(a)

    # The notice reached bob: in the room, the note shows before he writes.
    note = b.locator("#composer-note")
    expect(note).to_be_hidden()  # general: not muted there
    open_room(bob, "design")
    expect(note).to_be_visible(timeout=TIMEOUT)
    expect(note).to_have_text(re.compile(r"^You are muted in this room until \S+.*not sent\.$"))
    expect(b.locator("#input")).to_have_attribute("aria-describedby", re.compile("composer-note"))
    expect(bob.notices("alice muted you")).to_have_count(1, timeout=TIMEOUT)

    # A send is refused, says why, and stores nothing.
    refused = bob.send("let me speak")
    expect(refused).to_have_attribute("data-state", "failed", timeout=TIMEOUT)
    expect(refused.locator(".status-note")).to_have_text(
        re.compile(r"^Not sent: you are muted in this room until \S")
    )
    assert server.count("let me speak") == 0
    expect(alice.msg("let me speak")).to_have_count(0)
    # An edit of an earlier message is refused alike, and says why.
    mine = by_id(b, earlier)
    edit(mine, "edited while muted")
    expect(mine).to_have_attribute("data-edit", "failed", timeout=TIMEOUT)
    expect(mine.locator(".status-note")).to_have_text(
        re.compile(r"^Edit not saved: you are muted in this room until \S")
    )
    expect(alice.msg("edited while muted")).to_have_count(0)
    mine.get_by_role("button", name="Discard this edit").click()
    expect(mine.locator(".msg-text")).to_have_text("written before the mute")
    # The mute is this room's: general takes what he writes.
    open_general(bob)
    expect(note).to_be_hidden()
    sent(bob, "fine in general")
    open_general(alice)
    expect(alice.msg("fine in general")).to_have_count(1, timeout=TIMEOUT)

    # Lifted: the note goes, and the message goes out with Retry.
    open_room(alice, "design")
    open_members(a)
    manage(a, "bob").get_by_role("button", name="Unmute").click()
    expect(a.locator("#members-note")).to_have_text("bob can write again.", timeout=TIMEOUT)
    close_members(a)
    open_room(bob, "design")
    expect(note).to_be_hidden(timeout=TIMEOUT)
    refused.get_by_role("button", name="Retry").click()
    expect(refused).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(alice.msg("let me speak")).to_have_count(1, timeout=TIMEOUT)
