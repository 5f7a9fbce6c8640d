"""A private conversation started from a message's author, who is offline."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000


@pytest.fixture
def server_env() -> dict[str, str]:
    # Leaves are announced at once, so "bob is offline" is seen without waiting.
    return {"QUARTCHAT_LEAVE_GRACE": "0"}


def test_private_conversation_with_an_offline_author_from_their_message(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    carol = users.new("carol")
    bob_id, alice_id = bob.id(), alice.id()
    a = alice.page
    bob.send("anyone around?")
    expect(alice.msg("anyone around?")).to_have_count(1, timeout=TIMEOUT)
    # One's own name is no button: no private conversation with oneself.
    expect(bob.msg("anyone around?").locator(".msg-meta").get_by_role("button")).to_have_count(0)

    # Bob closes his page and is gone from alice's online list.
    bob.page.close()
    expect(alice.online(bob_id)).to_have_count(0, timeout=TIMEOUT)

    # His name over his message is a button, named with the nick it shows.
    author = alice.msg("anyone around?").get_by_role("button", name="Message bob privately")
    expect(author).to_have_text("bob")
    author.focus()
    a.keyboard.press("Enter")
    tab = a.locator(f'#conversations [data-conv="{bob_id}"]')
    expect(tab).to_have_attribute("aria-current", "true", timeout=TIMEOUT)
    expect(a.locator("#input")).to_have_attribute("placeholder", "Private message to bob")
    expect(a.locator("#input")).to_be_focused()
    alice.screenshot("desktop-private-offline")
    secret = "you missed this, bob"
    mine = alice.send(secret)
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(mine).to_have_class("msg own private")
    dm_id = int(mine.get_attribute("data-id") or 0)

    # Something public after it, so carol would have had the private one by now.
    a.locator('#conversations [data-conv="all"]').click()
    alice.send("public after")
    expect(carol.msg("public after")).to_have_count(1, timeout=TIMEOUT)

    # Bob comes back: the message waits for him in his conversation with alice.
    b = bob.open_page()
    bob.wait_connected(b)
    bob_tab = b.locator(f'#conversations [data-conv="{alice_id}"]')
    expect(bob_tab).to_contain_text("alice", timeout=TIMEOUT)
    expect(bob_tab.locator(".badge")).to_have_text("1")
    bob_tab.click()
    theirs = bob.msg(secret, b)
    expect(theirs).to_have_count(1, timeout=TIMEOUT)
    expect(theirs).to_have_class("msg private")
    expect(theirs).to_have_attribute("data-id", str(dm_id))

    # Carol never got it.
    c = carol.page
    assert dm_id not in c.evaluate("window.quartchat.state.messageIds")
    expect(c.locator("#messages .private")).to_have_count(0)
    expect(c.locator("#conversations [data-conv]")).to_have_count(1)
