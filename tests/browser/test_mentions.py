"""@mentions in the page: the composer suggests the room's members and is
driven by the keyboard alone; a message naming the reader is highlighted, and
notifies them while their tab is hidden (the permission granted beforehand)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Users
from .rooms_helpers import PHONE, TIMEOUT, create_room, invite, open_general, open_room
from .test_notify import RECORDER, hide, recorded

pytestmark = pytest.mark.browser


def test_at_suggests_members_and_is_picked_with_the_keyboard(users: Users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    users.new("bella")
    users.new("carol")
    a = alice.page
    expect(a.locator("#online li")).to_have_count(4, timeout=TIMEOUT)
    create_room(alice, "design", "private")
    invite(alice, "bob")
    invite(alice, "bella")
    box = a.locator("#input")
    options = a.locator("#mention-list [role=option]")
    nicks = options.locator(".mention-nick")

    # Only the room's members, not carol, and not alice herself. Typed into
    # the focused box as a user would (the invites' dialogs are closed and
    # have given focus back by now).
    box.click()
    expect(box).to_be_focused()
    box.press_sequentially("hi @")
    expect(a.locator("#mention-list")).to_be_visible(timeout=TIMEOUT)
    expect(nicks).to_have_text(["bella", "bob"])
    expect(box).to_have_attribute("aria-activedescendant", "mention-option-0")
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", "mention-option-1")
    box.press("Enter")  # picks; does not send
    expect(box).to_have_value("hi @bob ")
    expect(a.locator("#mention-list")).to_be_hidden()
    expect(box).not_to_have_attribute("aria-activedescendant", re.compile("."))

    # Typing narrows the list; Tab picks, Escape closes.
    box.press_sequentially("and @bel")
    expect(nicks).to_have_text(["bella"])
    box.press("Tab")
    expect(box).to_have_value("hi @bob and @bella ")
    expect(box).to_be_focused()
    box.press_sequentially("@b")
    expect(options).to_have_count(2)
    box.press("Escape")
    expect(a.locator("#mention-list")).to_be_hidden()
    box.press("Backspace")
    box.press("Backspace")
    box.press("Enter")  # closed: Enter sends
    mine = alice.msg("hi @bob and @bella")
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)

    # Bob sees it highlighted as naming him; alice's own copy is not.
    open_room(bob, "design")
    theirs = bob.msg("hi @bob and @bella")
    expect(theirs).to_have_class(re.compile(r"\bmentioned\b"), timeout=TIMEOUT)
    expect(theirs.locator(".mention-tag")).to_have_text("mentions you")
    expect(mine).not_to_have_class(re.compile(r"\bmentioned\b"))

    # In general the suggestions are the people online.
    open_general(alice)
    box.fill("@c")
    expect(nicks).to_have_text(["carol"])
    box.press("Escape")


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_a_mention_notifies_a_hidden_tab(users: Users, size: dict[str, Any]) -> None:
    alice = users.new("alice", join=False, permissions=["notifications"], **size)
    alice.context.add_init_script(RECORDER.replace("PERMISSION", "granted"))
    a = alice.join()
    bob = users.new("bob")
    create_room(bob, "design")
    invite(bob, "alice")
    expect(a.locator("#notify-note")).to_contain_text("mentions notify you")

    hide(a)
    bob.send("nobody named here")
    expect(bob.msg("nobody named here")).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    bob.send("@alice can you look?")
    a.wait_for_function("() => __notify.made.length > 0", timeout=TIMEOUT)
    first = {"title": "bob mentioned you in design", "body": "@alice can you look?"}
    assert recorded(a)["made"] == [{**first, "visibility": "hidden"}]
    # The title counts both unread messages; clicking the notification opens the room.
    expect(a).to_have_title("(2) quartchat", timeout=TIMEOUT)
    a.evaluate("__notify.last.onclick(new Event('click'))")
    expect(a.locator("#room-title")).to_contain_text("design")
    expect(alice.msg("@alice can you look?")).to_have_class(re.compile(r"\bmentioned\b"))

    # In general, too; and not for a mention of someone else.
    open_general(bob)
    bob.send("@carol not you")
    bob.send("@alice in general")
    a.wait_for_function("() => __notify.made.length > 1", timeout=TIMEOUT)
    made = recorded(a)["made"]
    assert [m["title"] for m in made] == [first["title"], "bob mentioned you in general"]
    assert recorded(a)["asked"] == []
