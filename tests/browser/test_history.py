"""What a page shows of the past: after a reload, and to someone who just arrived.

The server here sends only the newest 5 messages on a first visit and at
most 4 per history page, so a few messages already need several pages.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
PUBLIC = [f"public {n:02d}" for n in range(1, 16)]


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"QUARTCHAT_BACKLOG": "5", "QUARTCHAT_HISTORY_MAX": "4"}


def read_back_to_the_beginning(page: Page) -> None:
    """Scroll up, as a reader does, until the page says nothing is older."""
    top = page.locator("#messages .pane .history-top")
    for _ in range(30):
        if top.get_attribute("data-state") == "beginning":
            return
        page.locator("#messages").hover()
        page.mouse.wheel(0, -5_000)
        try:
            expect(top).to_have_attribute("data-state", "beginning", timeout=1_000)
        except AssertionError:
            continue
        return
    raise AssertionError("never reached the beginning of the conversation")


def shown_ids(page: Page) -> list[int]:
    ids: list[str] = page.locator("#messages .msg").evaluate_all(
        "els => els.map(e => e.dataset.id)"
    )
    return [int(x) for x in ids]


def test_reload_and_first_visit_show_history_once_in_order(users, server) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a = alice.page
    bob_id, alice_id = bob.id(), alice.id()

    for n, text in enumerate(PUBLIC, start=1):
        alice.send(text)
        if n == 6:  # a private exchange in the middle of the public one
            alice.online(bob_id).get_by_role("button").click()
            alice.send("private to bob")
            bob.page.locator(f'#conversations [data-conv="{alice_id}"]').click()
            expect(bob.msg("private to bob")).to_have_count(1, timeout=TIMEOUT)
            bob.send("private to alice")
            expect(alice.msg("private to alice")).to_have_count(1, timeout=TIMEOUT)
            a.locator('#conversations [data-conv="all"]').click()
            bob.page.locator('#conversations [data-conv="all"]').click()
    expect(bob.msg(PUBLIC[-1])).to_have_count(1, timeout=TIMEOUT)
    expect(bob.page.locator("#messages .msg-text")).to_have_text(PUBLIC, timeout=TIMEOUT)

    # Bob reloads: the public conversation comes back complete, once each.
    b = bob.page
    b.reload()
    bob.wait_connected()
    read_back_to_the_beginning(b)
    expect(b.locator("#messages .msg-text")).to_have_text(PUBLIC, timeout=TIMEOUT)
    ids = shown_ids(b)
    assert ids == sorted(set(ids))
    # ... and so does the private one, which he finds again in its tab.
    tab = b.locator(f'#conversations [data-conv="{alice_id}"]')
    expect(tab).to_have_count(1, timeout=TIMEOUT)
    tab.click()
    read_back_to_the_beginning(b)
    expect(b.locator("#messages .msg-text")).to_have_text(
        ["private to bob", "private to alice"], timeout=TIMEOUT
    )
    expect(b.locator("#messages .msg.private")).to_have_count(2)

    # Someone new sees the whole public history, in order, once, and nothing
    # private.
    carol = users.new("carol")
    c = carol.page
    read_back_to_the_beginning(c)
    expect(c.locator("#messages .msg-text")).to_have_text(PUBLIC, timeout=TIMEOUT)
    ids = shown_ids(c)
    assert ids == sorted(set(ids)) and len(ids) == len(PUBLIC)
    expect(c.locator("#conversations [data-conv]")).to_have_count(1)
    assert len(c.evaluate("window.quartchat.state.messageIds")) == len(PUBLIC)
    # It took paging: 5 came with the welcome, the other 10 in pages of 4.
    pages = [f for f in carol.frames_sent if f.get("type") == "history"]
    assert len(pages) >= 3, pages
