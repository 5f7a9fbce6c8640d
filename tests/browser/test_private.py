"""Private messages in the page: reach the one person they are for, no one else."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000


def test_private_message_reaches_only_its_recipient(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    carol = users.new("carol")
    alice_id, bob_id = alice.id(), bob.id()
    a, b, c = alice.page, bob.page, carol.page
    expect(a.locator("#online li")).to_have_count(3, timeout=TIMEOUT)

    # Alice picks bob in the online list: a private conversation opens.
    alice.online(bob_id).get_by_role("button").click()
    expect(a.locator(f'#conversations [data-conv="{bob_id}"]')).to_have_attribute(
        "aria-current", "true", timeout=TIMEOUT
    )
    expect(a.locator("#input")).to_have_attribute("placeholder", "Private message to bob")
    secret = "psst bob, only for you"
    mine = alice.send(secret)
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(mine).to_have_class("msg own private")
    dm_id = int(mine.get_attribute("data-id") or 0)
    assert dm_id > 0

    # Then something public, which everybody gets after the private one.
    a.locator('#conversations [data-conv="all"]').click()
    expect(a.locator("#input")).to_have_attribute("placeholder", "Message everyone")
    public = "hello everyone"
    alice.send(public)
    for user in (bob, carol):
        expect(user.msg(public)).to_have_count(1, timeout=TIMEOUT)

    # Bob: the private message is not in the public conversation, but in a
    # new conversation with alice, marked private, from alice.
    expect(bob.msg(secret)).to_have_count(0)
    tab = b.locator(f'#conversations [data-conv="{alice_id}"]')
    expect(tab).to_have_count(1, timeout=TIMEOUT)
    expect(tab).to_contain_text("alice")
    tab.click()
    theirs = bob.msg(secret)
    expect(theirs).to_have_count(1, timeout=TIMEOUT)
    expect(theirs).to_have_class("msg private")
    expect(theirs).to_have_attribute("data-id", str(dm_id))
    expect(theirs.locator(".msg-from")).to_have_text("alice")
    expect(b.locator("#messages .msg")).to_have_count(1)
    bob.screenshot("desktop-private")

    # Bob answers in the same conversation; it reaches alice privately.
    bob.send("got it")
    expect(a.locator(f'#conversations [data-conv="{bob_id}"] .badge')).to_have_text(
        "1", timeout=TIMEOUT
    )
    a.locator(f'#conversations [data-conv="{bob_id}"]').click()
    expect(alice.msg("got it")).to_have_class("msg private", timeout=TIMEOUT)
    expect(a.locator("#messages .msg-text")).to_have_text([secret, "got it"], timeout=TIMEOUT)

    # Bob, back in the public conversation, says something to everyone.
    b.locator('#conversations [data-conv="all"]').click()
    bob.send("bye all")
    expect(carol.msg("bye all")).to_have_count(1, timeout=TIMEOUT)

    # Carol: both public messages were sent after the private ones, so the
    # private ones would be here by now if the server had sent them. They are
    # nowhere: not in her list, no conversation tab, not among the ids she knows.
    expect(c.locator("#conversations [data-conv]")).to_have_count(1)
    expect(c.locator("#messages .msg-text")).to_have_text([public, "bye all"])
    known = c.evaluate("window.quartchat.state.messageIds")
    assert dm_id not in known and len(known) == 2
    expect(c.locator("#messages .private")).to_have_count(0)
