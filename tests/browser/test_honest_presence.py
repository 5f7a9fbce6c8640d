"""The online list tells only what is known: greyed out while disconnected,
and a short network blip does not announce a leave and a join."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
#: Offline and back: the page reacts to the browser's online event at once.
RECONNECT = 30_000


def dot_colour(page: Page, user_id: str) -> str:
    colour: str = page.locator(f'#online li[data-user-id="{user_id}"] .avatar').evaluate(
        "a => getComputedStyle(a, '::after').backgroundColor"
    )
    return colour


def test_online_list_greys_out_while_disconnected(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a = alice.page
    expect(alice.online(bob.id())).to_have_count(1, timeout=TIMEOUT)
    stale = a.locator("#online-stale")
    expect(stale).to_be_hidden()
    online_green = dot_colour(a, bob.id())

    alice.context.set_offline(True)
    expect(a.locator("#status")).to_have_attribute("data-state", "offline", timeout=RECONNECT)
    expect(stale).to_be_visible()
    expect(stale).to_contain_text("Not connected")
    assert dot_colour(a, bob.id()) != online_green  # nobody shown as online
    alice.screenshot("desktop-offline")

    alice.context.set_offline(False)
    alice.wait_connected()
    expect(stale).to_be_hidden()
    assert dot_colour(a, bob.id()) == online_green


def test_a_network_blip_announces_nothing_to_the_others(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    expect(alice.notices("bob joined")).to_have_count(1, timeout=TIMEOUT)
    sockets = len(bob.sockets)
    # Bob's connection drops and the page reconnects at once.
    bob.page.evaluate("window.quartchat.reconnect()")
    bob.wait_connected()
    assert len(bob.sockets) > sockets
    bob.send("still here")
    expect(alice.msg("still here")).to_have_count(1, timeout=TIMEOUT)
    alice.page.wait_for_timeout(500)
    expect(alice.notices("bob left")).to_have_count(0)
    expect(alice.notices("bob joined")).to_have_count(1)
    expect(alice.online(bob.id())).to_have_count(1)
