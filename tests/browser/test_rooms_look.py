"""The rooms' UI under axe-core (the room list with badges, a room's bar, the
@ suggestions and each dialog, light and dark, desktop and phone), and the
screenshots of the room list: artifacts/screenshots/rooms-light.png,
rooms-dark.png and rooms-phone.png."""

from __future__ import annotations

from typing import Literal

import pytest
from playwright.sync_api import Page, expect

from .conftest import User, Users
from .rooms_helpers import (
    PHONE,
    TIMEOUT,
    close_sidebar,
    create_room,
    invite,
    join_from_directory,
    open_general,
    room_entry,
    sidebar,
)
from .test_axe import violations

pytestmark = pytest.mark.browser


def busy_rooms(users: Users) -> tuple[User, User]:
    """Alice (desktop) and bob (phone) in general and three rooms, with unread
    messages and a mention waiting for both of them in general's view."""
    alice = users.new("alice")
    bob = users.new("bob", **PHONE)
    users.new("carol")
    create_room(alice, "design", "public", "Pixels, type and colour")
    create_room(alice, "release planning", "private", "Dates nobody else should see")
    invite(alice, "bob")
    create_room(alice, "random")
    alice.send("anyone here?")
    join_from_directory(bob, "design")
    bob.send("@alice the new icons are in")
    bob.send("and the dark theme too")
    open_general(alice)
    for text in ("dates are fixed", "@bob can you check the list?"):
        alice.page.locator("#rooms .room-button").filter(has_text="release planning").click()
        alice.send(text)
    open_general(alice)
    open_general(bob)
    expect(room_entry(alice, "design").locator(".badge")).to_have_text("2 unread", timeout=TIMEOUT)
    expect(room_entry(bob, "release planning").locator(".badge")).to_have_text(
        "2 unread", timeout=TIMEOUT
    )
    return alice, bob


SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")


def check(page: Page, where: str, found: list[str]) -> None:
    found += violations(page, where)


def test_rooms_ui_passes_axe_and_is_photographed(users: Users) -> None:
    alice, bob = busy_rooms(users)
    a, b = alice.page, bob.page
    # The toast about bob's invitation would cover the drawer's foot.
    b.evaluate("document.getElementById('toast').hidden = true")
    for scheme in SCHEMES:
        a.emulate_media(color_scheme=scheme)
        alice.screenshot(f"rooms-{scheme}")
    found: list[str] = []
    for scheme in SCHEMES:
        a.emulate_media(color_scheme=scheme)
        b.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        check(a, f"desktop {scheme}, room list", found)
        a.locator("#rooms .room-button").filter(has_text="design").focus()
        check(a, f"desktop {scheme}, room focused", found)
        sidebar(bob)
        expect(room_entry(bob, "release planning")).to_be_in_viewport(ratio=1, timeout=TIMEOUT)
        check(b, f"phone {scheme}, room drawer", found)
        if scheme == "light":
            bob.screenshot("rooms-phone")
        close_sidebar(bob)
        expect(b.locator("#sidebar-toggle")).to_be_focused()

        # A room with its bar, the @ list open.
        room_entry(alice, "design").click()
        a.locator("#input").fill("@")
        expect(a.locator("#mention-list")).to_be_visible(timeout=TIMEOUT)
        check(a, f"desktop {scheme}, @ suggestions", found)
        a.locator("#input").press("Escape")
        a.locator("#input").fill("")

        # Each dialog, open.
        a.locator("#room-members").click()
        expect(a.locator("#members-list li")).to_have_count(2, timeout=TIMEOUT)
        check(a, f"desktop {scheme}, members", found)
        a.keyboard.press("Escape")
        expect(a.locator("#room-members")).to_be_focused()
        a.locator("#room-new").click()
        a.locator("#room-name").fill("design")
        a.locator("#room-submit").click()
        expect(a.locator("#room-error")).to_be_visible(timeout=TIMEOUT)
        check(a, f"desktop {scheme}, new room with an error", found)
        a.keyboard.press("Escape")
        sidebar(bob)
        b.locator("#room-browse").click()
        expect(b.locator("#directory-list li")).to_have_count(1, timeout=TIMEOUT)
        check(b, f"phone {scheme}, directory", found)
        b.keyboard.press("Escape")
        close_sidebar(bob)
        open_general(alice)
    assert not found, "axe-core found:\n" + "\n".join(found)
