"""What the moderation browser tests share: acting on a message the way a
person does (hovering it, or tapping it on a phone, then its Edit or Delete
button), and the members dialog's Manage actions."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from .conftest import User
from .rooms_helpers import TIMEOUT, is_phone


def by_id(page: Page, message_id: int | str) -> Locator:
    """A message element by its server id, in the conversation shown."""
    return page.locator(f'#messages .msg[data-id="{message_id}"]')


def sent(user: User, text: str, page: Page | None = None) -> int:
    """Send ``text`` from the composer; its id once the server acked it."""
    mine = user.send(text, page)
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"), timeout=TIMEOUT)
    return int(mine.get_attribute("data-id") or 0)


def reveal(node: Locator) -> None:
    """Show a message's buttons: a pointer over it, or on a phone a tap on it."""
    if is_phone(node.page):
        node.locator(".msg-text").tap()
        expect(node).to_be_focused()
    else:
        node.hover()


def press(node: Locator, button: str) -> None:
    """Press one of a message's buttons (".msg-edit", ".msg-delete")."""
    reveal(node)
    target = node.locator(button)
    if is_phone(node.page):
        target.tap()
    else:
        target.click()


def edit(node: Locator, text: str) -> None:
    """Edit a message in place: Edit, replace the text, Enter."""
    press(node, ".msg-edit")
    box = node.locator(".msg-edit-input")
    expect(box).to_be_focused(timeout=TIMEOUT)
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_count(0)


def delete(node: Locator) -> None:
    """Delete a message: Delete, then confirm in the dialog."""
    page = node.page
    press(node, ".msg-delete")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#confirm-cancel")).to_be_focused()
    page.locator("#confirm-ok").click()
    expect(dialog).to_be_hidden()


def open_members(page: Page) -> Locator:
    """The shown room's members dialog, with its list loaded."""
    page.locator("#room-members").click()
    dialog = page.locator("#members-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#members-status")).to_contain_text("member", timeout=TIMEOUT)
    return dialog


def manage(page: Page, nick: str) -> Locator:
    """Open (if closed) the Manage actions for ``nick`` in the members dialog; the group."""
    toggle = page.get_by_role("button", name=f"Manage {nick}", exact=True)
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    group = page.get_by_role("group", name=f"Moderate {nick}", exact=True)
    expect(group).to_be_visible()
    return group


def close_members(page: Page) -> None:
    page.locator("#members-close").click()
    expect(page.locator("#members-dialog")).to_be_hidden()
