"""Edits, deletes and moderation under axe-core, light and dark, desktop and
phone: messages edited and deleted, a message's buttons, the editor open
(with its error), an edit refused, the delete confirmation, the members
dialog with a member's actions open, and a muted
member's note beside the composer.

And their screenshots for reviewers, in artifacts/screenshots/:
moderation-light.png and moderation-dark.png (desktop: a room with messages
edited and deleted, a message's buttons shown by a pointer over it),
moderation-members-light/dark.png (the members dialog, a member's actions
open), moderation-editor-light.png (editing in place, with its error),
moderation-phone.png and moderation-phone-members.png, moderation-ban-light.png
(an admin's ban dialog), muted-light.png (a muted user's note beside the
composer, a send refused) and banned-light.png (a banned user's page)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Literal

import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT, ChatServer, User, Users
from .moderation_helpers import by_id, close_members, edit, manage, open_members, press, sent
from .rooms_helpers import PHONE, TIMEOUT, create_room, join_from_directory, open_room
from .test_axe import violations

pytestmark = pytest.mark.browser

SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")


def test_moderation_ui_passes_axe(users: Users) -> None:
    alice = users.new("alice")
    bob = users.new("bob", **PHONE)
    a, b = alice.page, bob.page
    create_room(alice, "design")
    join_from_directory(bob, "design")
    kept = sent(bob, "a message that stays")
    changed = sent(bob, "a mesage with a typo")
    gone = sent(bob, "a message to take back")
    expect(alice.msg("a message to take back")).to_have_count(1, timeout=TIMEOUT)
    edit(by_id(b, changed), "a message without a typo")
    press(by_id(b, gone), ".msg-delete")
    b.locator("#confirm-ok").tap()
    expect(by_id(a, gone).locator(".msg-text")).to_have_text("message deleted", timeout=TIMEOUT)
    expect(by_id(a, changed).locator(".msg-edited")).to_have_count(1, timeout=TIMEOUT)
    # Alice mutes bob here: his note, and an edit of his refused.
    open_members(a)
    manage(a, "bob").get_by_role("button", name="Mute 1 h").click()
    expect(a.locator("#members-note")).to_contain_text("muted", timeout=TIMEOUT)
    close_members(a)
    expect(b.locator("#composer-note")).to_be_visible(timeout=TIMEOUT)
    edit(by_id(b, kept), "an edit that is refused")
    expect(by_id(b, kept)).to_have_attribute("data-edit", "failed", timeout=TIMEOUT)
    b.evaluate("document.getElementById('toast').hidden = true")

    found: list[str] = []

    def check(page: Page, where: str) -> None:
        found.extend(violations(page, where))

    for scheme in SCHEMES:
        a.emulate_media(color_scheme=scheme)
        b.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        # A message's buttons (an owner may delete bob's), shown by focus.
        by_id(a, kept).focus()
        check(a, f"desktop {scheme}, a message's buttons")
        by_id(b, changed).locator(".msg-text").tap()
        check(b, f"phone {scheme}, muted, edited, deleted, an edit refused")

        # The editor, with its error.
        press(by_id(b, changed), ".msg-edit")
        b.locator(".msg-edit-input").fill(" ")
        b.locator(".msg-edit-input").press("Enter")
        expect(b.locator(".msg-edit-error")).to_be_visible()
        check(b, f"phone {scheme}, editor with an error")
        b.locator(".msg-edit-input").press("Escape")
        expect(b.locator(".msg-editor")).to_have_count(0)

        # The delete confirmation.
        press(by_id(a, kept), ".msg-delete")
        expect(a.locator("#confirm-dialog")).to_be_visible()
        check(a, f"desktop {scheme}, delete confirmation")
        a.keyboard.press("Escape")
        expect(a.locator("#confirm-dialog")).to_be_hidden()

        # The members dialog with bob's actions open, and a note.
        open_members(a)
        manage(a, "bob")
        a.get_by_role("button", name="Make moderator").click()
        # The answer redraws the list; bob's actions stay open, now offering Make member.
        expect(a.locator("#members-note")).to_have_text("bob is now a moderator.", timeout=TIMEOUT)
        manage(a, "bob")
        check(a, f"desktop {scheme}, members with actions")
        a.get_by_role("button", name="Make member").click()
        expect(a.locator("#members-note")).to_have_text("bob is now a member.", timeout=TIMEOUT)
        close_members(a)
    assert not found, "axe-core found:\n" + "\n".join(found)


@dataclass
class Scene:
    """A room, "design", where things were edited and deleted: alice owns it
    (desktop), bob (desktop) and carol (phone) talk in it, dave spammed it."""

    alice: User
    bob: User
    carol: User
    dave: User
    thanks: int  # alice's last message
    mine: int  # carol's own message


def moderated_room(users: Users) -> Scene:
    alice = users.new("alice")
    bob = users.new("bob")
    carol = users.new("carol", **PHONE)
    dave = users.new("dave")
    a, b, c = alice.page, bob.page, carol.page
    create_room(alice, "design", topic="Mockups, reviews and the icon set")
    for user in (bob, carol, dave):
        join_from_directory(user, "design")
    sent(bob, "morning! the new mockups are in the drive")
    review = sent(alice, "let's review them at 5")
    typo = sent(bob, "the icon st needs a darker outline")
    spam = sent(dave, "buy cheap watches at example.com")
    mine = sent(carol, "I can check the contrast tonight")
    thanks = sent(alice, "thanks both, see you at the review")
    expect(c.locator("#messages .msg")).to_have_count(6, timeout=TIMEOUT)
    edit(by_id(a, review), "let's review them at 6")
    edit(by_id(b, typo), "the icon set needs a darker outline")
    press(by_id(a, spam), ".msg-delete")
    a.locator("#confirm-ok").click()
    for page in (a, b, c):
        expect(by_id(page, spam).locator(".msg-text")).to_have_text(
            "message deleted", timeout=TIMEOUT
        )
        expect(by_id(page, typo).locator(".msg-edited")).to_have_count(1, timeout=TIMEOUT)
        expect(by_id(page, review).locator(".msg-edited")).to_have_count(1, timeout=TIMEOUT)
    return Scene(alice, bob, carol, dave, thanks, mine)


def grant_admin(server: ChatServer, user: User) -> None:
    """Make ``user`` a chat-wide admin the way an operator does (``quartchat
    admin grant``), and reload their page until its welcome says so."""
    env = {**os.environ, **server.env, "QUARTCHAT_DB": str(server.db_path)}
    done = subprocess.run(
        [sys.executable, "-m", "quartchat", "admin", "grant", user.id()],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = user.page
    deadline = time.monotonic() + TIMEOUT / 1000
    while not page.evaluate("window.quartchat.state.admin") and time.monotonic() < deadline:
        page.wait_for_timeout(300)  # the server reads the admins once a second
        page.reload()
        user.wait_connected()
    assert page.evaluate("window.quartchat.state.admin") is True


def shoot(user: User, name: str, found: list[str], where: str) -> None:
    """Save ``artifacts/screenshots/<name>.png`` of the user's page, and check it under axe."""
    found.extend(violations(user.page, where))
    assert user.screenshot(name).stat().st_size > 0


def test_moderation_ui_is_photographed(users: Users, server: ChatServer) -> None:
    """Screenshots for reviewers, each state also under axe."""
    scene = moderated_room(users)
    alice, bob, carol, dave = scene.alice, scene.bob, scene.carol, scene.dave
    a, b, c = alice.page, bob.page, carol.page
    found: list[str] = []
    for scheme in SCHEMES:
        a.emulate_media(color_scheme=scheme)
        by_id(a, scene.thanks).hover()
        expect(by_id(a, scene.thanks).locator(".msg-edit")).to_be_visible()
        shoot(alice, f"moderation-{scheme}", found, f"desktop {scheme}, a message's buttons")
        open_members(a)
        manage(a, "bob")
        shoot(alice, f"moderation-members-{scheme}", found, f"desktop {scheme}, members")
        close_members(a)
    a.emulate_media(color_scheme="light")
    press(by_id(a, scene.thanks), ".msg-edit")
    a.locator(".msg-edit-input").fill(" ")
    a.locator(".msg-edit-input").press("Enter")
    expect(a.locator(".msg-edit-error")).to_be_visible()
    shoot(alice, "moderation-editor-light", found, "desktop, editor with an error")
    a.locator(".msg-edit-input").press("Escape")

    # Carol, on a phone: her own message tapped, then (a moderator now) the members dialog.
    by_id(c, scene.mine).locator(".msg-text").tap()
    expect(by_id(c, scene.mine).locator(".msg-delete")).to_be_visible()
    shoot(carol, "moderation-phone", found, "phone, a message's buttons")
    open_members(a)
    manage(a, "carol").get_by_role("button", name="Make moderator").click()
    expect(a.locator("#members-note")).to_have_text("carol is now a moderator.", timeout=TIMEOUT)
    # Bob is muted for an hour: his note, and a send refused.
    manage(a, "bob").get_by_role("button", name="Mute 1 h").click()
    expect(a.locator("#members-note")).to_contain_text("bob is muted", timeout=TIMEOUT)
    close_members(a)
    expect(carol.notices("alice made you a moderator")).to_have_count(1, timeout=TIMEOUT)
    c.evaluate("document.getElementById('toast').hidden = true")
    open_members(c)
    manage(c, "bob")
    shoot(carol, "moderation-phone-members", found, "phone, members")
    close_members(c)

    expect(b.locator("#composer-note")).to_be_visible(timeout=TIMEOUT)
    refused = bob.send("can I still post here?")
    expect(refused).to_have_attribute("data-state", "failed", timeout=TIMEOUT)
    shoot(bob, "muted-light", found, "desktop, muted, a send refused")

    # The operator makes alice an admin; she bans dave.
    grant_admin(server, alice)
    if "design" not in (a.locator("#room-title").text_content() or ""):
        open_room(alice, "design")
    open_members(a)
    manage(a, "dave").get_by_role("button", name="Ban from chat…").click()
    a.locator("#confirm-choice").select_option(label="For 24 hours")
    shoot(alice, "moderation-ban-light", found, "desktop, the ban dialog")
    a.locator("#confirm-ok").click()
    expect(a.locator("#members-note")).to_contain_text("dave is banned", timeout=TIMEOUT)
    close_members(a)
    expect(dave.page.locator("#banned")).to_be_visible(timeout=TIMEOUT)
    # Nothing can be sent: no message box is offered.
    expect(dave.page.locator("#input")).to_be_hidden()
    shoot(dave, "banned-light", found, "desktop, banned")
    assert not found, "axe-core found:\n" + "\n".join(found)
