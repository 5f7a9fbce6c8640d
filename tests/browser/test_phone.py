"""The page on a phone-sized screen (390x844, touch): joining, reading, sending."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
WIDTH, HEIGHT = 390, 844


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width}px wide on a {WIDTH}px screen"


def test_phone_viewport_join_read_and_send(users) -> None:
    bob = users.new("bob")
    phone = users.new(
        "alice", join=False, viewport={"width": WIDTH, "height": HEIGHT},
        device_scale_factor=2, is_mobile=True, has_touch=True,
    )  # fmt: skip
    page = phone.open_page()

    # The nickname dialog fits and works by touch.
    dialog = page.locator("#nick-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(dialog).to_be_in_viewport(ratio=1)
    page.locator("#nick-input").tap()
    page.locator("#nick-input").fill("alice")
    page.locator("#nick-submit").tap()
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    phone.wait_connected()
    expect(page.locator("#me")).to_have_text("alice", timeout=TIMEOUT)
    expect(bob.online(phone.id())).to_have_count(1, timeout=TIMEOUT)

    # The composer is on screen, entirely, and usable by touch.
    for part in ("#composer", "#input", "#send"):
        expect(page.locator(part)).to_be_visible()
        expect(page.locator(part)).to_be_in_viewport(ratio=1)
    no_sideways_scroll(page)

    bob.send("hi from a desktop")
    expect(phone.msg("hi from a desktop")).to_be_visible(timeout=TIMEOUT)
    expect(phone.msg("hi from a desktop")).to_be_in_viewport()

    page.locator("#input").tap()
    expect(page.locator("#input")).to_be_focused()
    page.locator("#input").press_sequentially("hello from my phone")
    page.locator("#send").tap()
    mine = phone.msg("hello from my phone")
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(mine).to_be_in_viewport()
    expect(page.locator("#input")).to_have_value("")
    expect(bob.msg("hello from my phone")).to_have_count(1, timeout=TIMEOUT)
    expect(bob.msg("hello from my phone").locator(".msg-from")).to_have_text("alice")

    # A long message, even one unbreakable word, wraps instead of widening the page.
    long_text = "https://example.com/" + "x" * 150 + " and then some ordinary words to wrap"
    phone.send(long_text)
    expect(phone.msg(long_text)).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(bob.msg(long_text)).to_have_count(1, timeout=TIMEOUT)
    no_sideways_scroll(page)
    expect(page.locator("#composer")).to_be_in_viewport(ratio=1)
    phone.screenshot("phone-chat")

    # Who is online sits behind a button on a phone; it opens and closes.
    toggle = page.locator("#sidebar-toggle")
    expect(toggle).to_be_visible()
    toggle.tap()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#online li")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1, timeout=TIMEOUT)
    expect(phone.online(bob.id())).to_be_in_viewport()
    phone.screenshot("phone-online")
    page.locator("#sidebar-close").tap()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#sidebar")).not_to_be_in_viewport(timeout=TIMEOUT)
    expect(page.locator("#composer")).to_be_in_viewport(ratio=1)
