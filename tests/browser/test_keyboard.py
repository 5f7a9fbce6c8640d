"""Keyboard-only use: joining, chatting and renaming without the mouse.

Every step here goes through ``page.keyboard`` (type, Enter, Tab, Space,
Escape); nothing is clicked or filled. Focus is read from the page itself,
``document.activeElement``, so a control that merely looks focused does not
pass.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
#: More Tab presses than the page has stops; a walk this long means a trap.
MAX_TABS = 12


def focused(page: Page) -> str:
    """The id of the focused element, or its tag name when it has none."""
    name: str = page.evaluate("document.activeElement.id || document.activeElement.tagName")
    return name


def tab_to(page: Page, target: str, key: str = "Tab") -> list[str]:
    """Press ``key`` until the element with id ``target`` has focus.

    Returns the focus stops on the way (the last one is ``target``) and fails
    if ``target`` is not reached within MAX_TABS presses.
    """
    path: list[str] = []
    for _ in range(MAX_TABS):
        page.keyboard.press(key)
        path.append(focused(page))
        if path[-1] == target:
            return path
    raise AssertionError(f"{key} never reached #{target}; focus went {' -> '.join(path)}")


def test_first_visit_join_and_chat_with_the_keyboard_only(users) -> None:
    bob = users.new("bob")
    carol = users.new("carol", join=False)
    page = carol.open_page()

    # The welcome dialog opens with the caret in the nickname field.
    dialog = page.get_by_role("dialog", name="Welcome to quartchat")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#nick-input")).to_be_focused()
    assert focused(page) == "nick-input"

    page.keyboard.type("carol")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    carol.wait_connected()
    expect(page.locator("#me")).to_have_text("carol", timeout=TIMEOUT)
    expect(bob.online(carol.id())).to_contain_text("carol", timeout=TIMEOUT)
    # Joining put the caret in the message box, and connecting left it there.
    expect(page.locator("#input")).to_be_focused()
    assert focused(page) == "input"

    text = "typed without a mouse"
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    mine = carol.msg(text)
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(bob.msg(text)).to_have_count(1, timeout=TIMEOUT)
    expect(bob.msg(text).locator(".msg-from")).to_have_text("carol", timeout=TIMEOUT)
    # The box is emptied and keeps focus, ready for the next message.
    expect(page.locator("#input")).to_have_value("")
    assert focused(page) == "input"

    # Shift+Enter is a new line, not a send; Enter then sends both lines as one.
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(page.locator("#input")).to_have_value("first line\nsecond line")
    page.keyboard.press("Enter")
    two_lines = bob.page.locator("#messages .msg-text").nth(1)
    expect(two_lines).to_have_text("first line second line", timeout=TIMEOUT)
    assert two_lines.text_content() == "first line\nsecond line"
    expect(bob.page.locator("#messages .msg")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator("#messages .msg.own[data-state='sent']")).to_have_count(2, timeout=TIMEOUT)
    assert focused(page) == "input"


def test_skip_link_leads_a_returning_visitor_to_the_message_box(users) -> None:
    alice = users.new("alice")
    page = alice.page
    page.reload()
    alice.wait_connected()

    # The first Tab stop on the page is the skip link, and it works.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#input")).to_be_focused()
    assert focused(page) == "input"


def test_tab_from_the_composer_to_change_nick_and_back(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    page = alice.page
    dialog = page.locator("#nick-dialog")
    expect(alice.online(bob.id())).to_have_count(1, timeout=TIMEOUT)
    # After joining, the caret waits in the message box.
    assert focused(page) == "input"

    # Forwards from the box: Send first, then (around the end of the page)
    # the change-nick button, without getting stuck anywhere on the way.
    path = tab_to(page, "nick-button")
    assert path[0] == "send", path
    # Enter opens the dialog, with the current nick selected for retyping.
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Change your nickname")).to_be_visible(timeout=TIMEOUT)
    assert focused(page) == "nick-input"
    expect(page.locator("#nick-input")).to_have_value("alice")
    selected = page.locator("#nick-input").evaluate("e => [e.selectionStart, e.selectionEnd]")
    assert selected == [0, len("alice")]
    # Escape cancels: closed, nothing changed, focus back on the button.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator("#nick-button")).to_be_focused()
    expect(page.locator("#me")).to_have_text("alice")

    # Space opens it too; typing replaces the selected nick and Enter saves.
    page.keyboard.press("Space")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    assert focused(page) == "nick-input"
    page.keyboard.type("alicia")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator("#me")).to_have_text("alicia", timeout=TIMEOUT)
    expect(bob.notices("alice is now alicia")).to_have_count(1, timeout=TIMEOUT)
    # Renamed, the caret is back in the message box; the next message goes
    # out under the new name.
    expect(page.locator("#input")).to_be_focused()
    page.keyboard.type("renamed by keyboard")
    page.keyboard.press("Enter")
    expect(bob.msg("renamed by keyboard").locator(".msg-from")).to_have_text(
        "alicia", timeout=TIMEOUT
    )

    # Backwards works too: Shift+Tab from the box reaches the button, and
    # Escape closes a dialog opened from there.
    tab_to(page, "nick-button", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    assert focused(page) == "nick-button"
    expect(page.locator("#me")).to_have_text("alicia")


def test_controls_have_accessible_names(users) -> None:
    alice = users.new("alice")
    page = alice.page

    # The message box is labelled, and so is the button that sends it.
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_have_id("input")
    expect(page.get_by_label("Message", exact=True)).to_have_id("input")
    expect(page.get_by_role("button", name="Send")).to_have_id("send")
    expect(page.get_by_role("button", name="Send message", exact=True)).to_have_id("send")
    expect(page.get_by_role("button", name="Change nick", exact=True)).to_have_id("nick-button")
    expect(page.get_by_role("region", name="Messages to everyone")).to_have_id("messages")

    # The dialog and everything in it.
    page.locator("#nick-button").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Change your nickname")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(dialog.get_by_role("textbox", name="Nickname", exact=True)).to_have_id("nick-input")
    expect(dialog.get_by_role("button", name="Save", exact=True)).to_have_id("nick-submit")
    expect(dialog.get_by_role("button", name="Cancel", exact=True)).to_have_id("nick-cancel")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden(timeout=TIMEOUT)

    # No visible button, link or text field is left without a name.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, a[href], input, textarea, [tabindex]')]
            .filter((e) => e.checkVisibility() && !e.closest('[hidden], dialog:not([open])'))
            .filter((e) => !(e.getAttribute('aria-label') || e.labels?.length
                             || e.getAttribute('aria-labelledby') || e.textContent.trim()))
            .map((e) => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []


def test_visible_button_text_is_part_of_the_accessible_name(users) -> None:
    """WCAG 2.5.3 (label in name): a speech-input user says what they see,
    so "click Change nick" must find the button that shows "Change nick"."""
    alice = users.new("alice")
    page = alice.page
    for visible, control in [("Send", "send"), ("Change nick", "nick-button")]:
        expect(page.locator(f"#{control}")).to_contain_text(re.compile(re.escape(visible)))
        expect(page.get_by_role("button", name=visible)).to_have_id(control, timeout=2_000)
