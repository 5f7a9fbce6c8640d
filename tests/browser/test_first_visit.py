"""Choosing a nickname someone online holds, on the first visit: the page asks
again before anyone sees the newcomer, so others see one join, final name."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000


def test_a_taken_nick_is_asked_again_before_anyone_sees_the_newcomer(users) -> None:
    alice = users.new("alice")
    newcomer = users.new("bob", join=False)
    page = newcomer.open_page()
    dialog, error = page.locator("#nick-dialog"), page.locator("#nick-error")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    page.locator("#nick-input").fill("ALICE")
    page.locator("#nick-submit").click()

    # Still in the dialog, told why, with the name ready to edit.
    expect(error).to_contain_text("already taken", timeout=TIMEOUT)
    expect(dialog).to_be_visible()
    expect(page.locator("#nick-input")).to_have_value("ALICE")
    expect(page.locator("#nick-input")).to_be_focused()
    expect(page.locator("#nick-submit")).to_be_enabled()
    expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")

    page.locator("#nick-input").fill("bob")
    page.locator("#nick-submit").click()
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    newcomer.wait_connected()
    expect(page.locator("#me")).to_have_text("bob")

    # alice saw exactly one arrival, under the final name, and no rename.
    expect(alice.notices("bob joined")).to_have_count(1, timeout=TIMEOUT)
    alice.send("hi bob")
    expect(newcomer.msg("hi bob")).to_have_count(1, timeout=TIMEOUT)
    expect(alice.page.locator("#messages .notice")).to_have_text(["bob joined"])
    expect(alice.page.locator("#online li")).to_have_count(2)
    expect(newcomer.page.locator("#messages .notice")).to_have_count(0)
