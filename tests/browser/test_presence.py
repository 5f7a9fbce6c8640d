"""Who is online, as the page shows it: one entry per person, however many tabs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000


def test_online_list_counts_people_not_tabs(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    alice_id, bob_id = alice.id(), bob.id()
    first_tab = alice.page

    for page in (first_tab, bob.page):
        expect(page.locator("#online li")).to_have_count(2, timeout=TIMEOUT)
    expect(bob.online(alice_id)).to_contain_text("alice")
    expect(alice.online(bob_id)).to_contain_text("bob")

    # A second tab of alice (same context, so the same stored identity) goes
    # straight in, without the nickname dialog, and counts once.
    second_tab = alice.open_page()
    alice.wait_connected(second_tab)
    expect(second_tab.locator("#nick-dialog")).to_be_hidden()
    expect(second_tab.locator("#me")).to_have_text("alice", timeout=TIMEOUT)
    assert alice.id(second_tab) == alice_id
    expect(second_tab.locator("#online li")).to_have_count(2, timeout=TIMEOUT)
    # A later message from bob proves the second tab's join was handled
    # before it: no second entry and no second "joined" notice came with it.
    bob.send("who is here?")
    expect(alice.msg("who is here?", second_tab)).to_have_count(1, timeout=TIMEOUT)
    expect(alice.msg("who is here?", first_tab)).to_have_count(1, timeout=TIMEOUT)
    expect(bob.page.locator("#online li")).to_have_count(2)
    expect(bob.online(alice_id)).to_have_count(1)
    # alice was there before bob: he never got a "joined" for her, and her
    # second tab must not make one.
    expect(bob.notices("alice joined")).to_have_count(0)

    # What one tab sends shows once in the other, as alice's own message.
    alice.send("from my second tab", second_tab)
    expect(bob.msg("from my second tab")).to_have_count(1, timeout=TIMEOUT)
    expect(alice.msg("from my second tab", second_tab)).to_have_attribute(
        "data-state", "sent", timeout=TIMEOUT
    )
    other_copy = alice.msg("from my second tab", first_tab)
    expect(other_copy).to_have_count(1, timeout=TIMEOUT)
    expect(other_copy).to_have_class("msg own", timeout=TIMEOUT)
    expect(alice.msg("from my second tab", second_tab)).to_have_count(1)

    # Closing one tab keeps alice online.
    first_tab.close()
    bob.page.wait_for_timeout(1_500)
    expect(bob.online(alice_id)).to_have_count(1)
    expect(bob.notices("alice left")).to_have_count(0)
    # carol joins after the close: the server's own list (her welcome) has alice.
    carol = users.new("carol")
    expect(carol.page.locator("#online li")).to_have_count(3, timeout=TIMEOUT)
    expect(carol.online(alice_id)).to_have_count(1)
    # The remaining tab still works.
    alice.send("still here", second_tab)
    expect(bob.msg("still here")).to_have_count(1, timeout=TIMEOUT)
    expect(bob.notices("alice left")).to_have_count(0)

    # Closing the last tab: alice leaves everyone's list with a notice.
    second_tab.close()
    for other in (bob, carol):
        expect(other.online(alice_id)).to_have_count(0, timeout=TIMEOUT)
        expect(other.notices("alice left")).to_have_count(1, timeout=TIMEOUT)
        expect(other.page.locator("#online li")).to_have_count(2, timeout=TIMEOUT)
    expect(bob.online(carol.id())).to_have_count(1)
