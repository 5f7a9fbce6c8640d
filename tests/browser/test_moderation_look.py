"""Edits, deletes and moderation under axe-core, light and dark, desktop and
phone: messages edited and deleted, a message's buttons, the editor open
(with its error), an edit refused, the delete confirmation, the members
dialog with a member's actions open, and a muted
member's note beside the composer."""

from __future__ import annotations

from typing import Literal

import pytest
from playwright.sync_api import Page, expect

from .conftest import Users
from .moderation_helpers import by_id, close_members, edit, manage, open_members, press, sent
from .rooms_helpers import PHONE, TIMEOUT, create_room, join_from_directory
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
