"""A reader at the newest message stays there through resizes, wrapping and
new messages; a reader who scrolled up is left where they are."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from .conftest import User

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
PHONE: ViewportSize = {"width": 390, "height": 844}
PHONE_WITH_KEYBOARD: ViewportSize = {"width": 390, "height": 500}
#: Long enough to wrap onto several lines once the window narrows.
WORDS = " ".join(f"word{n}" for n in range(60))


def distance_from_bottom(page: Page) -> float:
    gap: float = page.locator("#messages").evaluate(
        "m => m.scrollHeight - m.scrollTop - m.clientHeight"
    )
    return gap


def expect_at_bottom(page: Page) -> None:
    deadline = time.monotonic() + TIMEOUT / 1000
    while distance_from_bottom(page) > 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert distance_from_bottom(page) <= 2, f"{distance_from_bottom(page)} px above the bottom"


def fill_history(server, count: int = 40) -> None:
    now = int(time.time() * 1000)
    server.seed([(f"{WORDS} #{n}", now - (count - n) * 60_000) for n in range(count)])


def reader(users, nick: str, viewport: ViewportSize | None = None) -> User:
    options = {"device_scale_factor": 2, "is_mobile": True, "has_touch": True} if viewport else {}
    user = users.new(nick, viewport=viewport, **options)
    expect(user.page.locator("#messages .msg")).to_have_count(40, timeout=TIMEOUT)
    expect_at_bottom(user.page)
    return user


def test_desktop_reader_stays_at_the_bottom_through_resizes_and_wrapping(users, server) -> None:
    fill_history(server)
    alice = reader(users, "alice")
    a = alice.page
    # The window made shorter, then narrower (every long message wraps onto
    # more lines), then back: still at the newest message each time.
    a.set_viewport_size({"width": 1280, "height": 450})
    expect_at_bottom(a)
    a.set_viewport_size({"width": 700, "height": 450})
    expect_at_bottom(a)
    a.set_viewport_size({"width": 1280, "height": 800})
    expect_at_bottom(a)

    # New messages after that still come into view, with no "New messages" button.
    bob = users.new("bob")
    bob.send(f"{WORDS} from bob")
    expect(alice.msg(f"{WORDS} from bob")).to_be_in_viewport(timeout=TIMEOUT)
    expect_at_bottom(a)
    expect(a.locator("#jump")).to_be_hidden()

    # Someone reading older messages is not pulled down by a resize.
    a.locator("#messages").evaluate("m => { m.scrollTop = 0; }")
    a.wait_for_timeout(200)
    a.set_viewport_size({"width": 1280, "height": 500})
    a.wait_for_timeout(300)
    assert distance_from_bottom(a) > 500
    bob.send("one more")
    expect(a.locator("#jump")).to_be_visible(timeout=TIMEOUT)


def test_phone_reader_stays_at_the_bottom_when_the_keyboard_opens(users, server) -> None:
    fill_history(server)
    phone = reader(users, "alice", PHONE)
    page = phone.page
    page.locator("#input").tap()
    page.set_viewport_size(PHONE_WITH_KEYBOARD)  # what the on-screen keyboard leaves
    expect_at_bottom(page)
    expect(page.locator("#composer")).to_be_in_viewport(ratio=1)
    phone.send("typed with the keyboard open")
    expect(phone.msg("typed with the keyboard open")).to_be_in_viewport(timeout=TIMEOUT)
    page.set_viewport_size(PHONE)
    expect_at_bottom(page)
