"""A grouped message (no header of its own) shows its time on hover and focus."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
#: A US English reader in UTC: times read like "02:05 PM".
READER = {"timezone_id": "UTC", "locale": "en-US"}


def test_a_grouped_message_shows_its_time_on_hover_and_on_keyboard_focus(users) -> None:
    alice = users.new("alice", **READER)
    bob = users.new("bob", **READER)
    bob.send("first of two")
    bob.send("second of two")
    a = alice.page
    first, second = alice.msg("first of two"), alice.msg("second of two")
    expect(second).to_have_class("msg grouped", timeout=TIMEOUT)
    ts = int(second.get_attribute("data-ts") or 0)
    expected = a.evaluate(
        "ts => new Date(ts).toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'})",
        ts,
    )
    assert expected.endswith(("AM", "PM")), expected  # the reader's locale, not a fixed 24 h
    side = second.locator("time.msg-side-time")
    expect(side).to_have_text(expected)
    # The full date is in its tooltip, and the machine-readable time in datetime.
    assert str(side.get_attribute("title") or "").endswith(expected)
    expect(side).to_have_attribute("datetime", a.evaluate("ts => new Date(ts).toISOString()", ts))

    # Hidden while nothing points at it; the message's own header shows none.
    a.mouse.move(1, 1)
    expect(side).to_be_hidden()
    expect(second.locator(".msg-time")).to_be_hidden()

    # Hover shows it, moving away hides it again.
    second.hover()
    expect(side).to_be_visible()
    a.locator("#input").hover()
    expect(side).to_be_hidden()

    # Keyboard: Tab from the message above reaches this one, with a focus
    # ring, and its time shows; Tab onwards leaves it hidden again.
    first.focus()
    for _ in range(3):
        a.keyboard.press("Tab")
        if second.evaluate("m => m === document.activeElement"):
            break
    expect(second).to_be_focused()
    assert second.evaluate("m => m.matches(':focus-visible')")
    assert second.evaluate("m => getComputedStyle(m).outlineStyle") == "solid"
    expect(side).to_be_visible()
    alice.screenshot("desktop-grouped-time")
    a.emulate_media(color_scheme="dark")
    alice.screenshot("desktop-grouped-time-dark")
    a.emulate_media(color_scheme="light")
    a.keyboard.press("Tab")
    expect(second).not_to_be_focused()
    expect(side).to_be_hidden()
    # The first message of the group keeps its header time and has no side time shown.
    expect(first.locator(".msg-time")).to_be_visible()
    expect(first.locator(".msg-side-time")).to_be_hidden()
