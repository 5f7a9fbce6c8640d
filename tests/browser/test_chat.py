"""Public chat in a real browser: sending, no echo, typing, escaping, nicknames."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000

#: Records, from inside the page, every own message element put into
#: #messages and every change of its data-state. The observer's callback runs
#: at the end of the task that changed the DOM, before any later task (such
#: as the socket delivering the ack) can run, so what it records for an
#: insertion is the state the element was first shown in.
WATCH_OWN = """() => {
  window.__own = [];
  const note = (node, what) => window.__own.push({
    what, text: node.querySelector('.msg-text')?.textContent ?? null,
    state: node.dataset.state ?? null, id: node.dataset.id ?? null,
  });
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'childList') {
        for (const n of r.addedNodes) {
          if (n.nodeType === 1 && n.matches('.msg.own')) note(n, 'added');
        }
      } else if (r.target.matches('.msg.own')) {
        note(r.target, 'state');
      }
    }
  }).observe(document.querySelector('#messages'),
             {childList: true, subtree: true, attributes: true, attributeFilter: ['data-state']});
}"""


def test_two_users_chat_both_ways_without_echo(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    expect(alice.online(bob.id())).to_have_count(1, timeout=TIMEOUT)

    a.evaluate(WATCH_OWN)
    text = "hello bob, this is alice"
    mine = alice.send(text)

    # Shown at once, as pending and without an id, in the same task as the
    # Enter key: nothing from the server was needed to put it there.
    first = a.evaluate("window.__own[0]")
    assert first == {"what": "added", "text": text, "state": "pending", "id": None}
    # Then the ack turns it into a sent message with the server's id.
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"), timeout=TIMEOUT)
    alice_id = mine.get_attribute("data-id")
    states = [r["state"] for r in a.evaluate("window.__own") if r["text"] == text]
    assert states[0] == "pending" and states[-1] == "sent" and "failed" not in states

    # Bob gets it once, as alice's, with the same id.
    theirs = bob.msg(text)
    expect(theirs).to_have_count(1, timeout=TIMEOUT)
    expect(theirs).to_have_attribute("data-id", alice_id or "", timeout=TIMEOUT)
    expect(theirs.locator(".msg-from")).to_have_text("alice", timeout=TIMEOUT)
    expect(theirs).not_to_have_class("own")

    # The other way round.
    reply = "hi alice, bob here"
    bob.send(reply)
    expect(alice.msg(reply)).to_have_count(1, timeout=TIMEOUT)
    expect(alice.msg(reply).locator(".msg-from")).to_have_text("bob", timeout=TIMEOUT)
    expect(bob.msg(reply)).to_have_attribute("data-state", "sent", timeout=TIMEOUT)

    # Bob's reply reached alice after the server handled her message, so an
    # echo of it would be on her page by now: still exactly one element.
    expect(alice.msg(text)).to_have_count(1, timeout=TIMEOUT)
    expect(bob.msg(reply)).to_have_count(1, timeout=TIMEOUT)
    expect(bob.msg(text)).to_have_count(1, timeout=TIMEOUT)
    expect(a.locator("#messages .msg")).to_have_count(2, timeout=TIMEOUT)
    expect(b.locator("#messages .msg")).to_have_count(2, timeout=TIMEOUT)
    expect(a.locator("#messages .msg-text")).to_have_text([text, reply], timeout=TIMEOUT)
    expect(b.locator("#messages .msg-text")).to_have_text([text, reply], timeout=TIMEOUT)
    alice.screenshot("desktop-chat")


def test_typing_indicator_shows_and_clears_on_send(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    expect(bob.online(alice.id())).to_have_count(1, timeout=TIMEOUT)
    expect(b.locator("#typing")).to_have_text("", timeout=TIMEOUT)

    a.locator("#input").click()
    a.locator("#input").press_sequentially("are you th", delay=30)
    expect(b.locator("#typing")).to_contain_text("alice is typing", timeout=TIMEOUT)
    # Nothing was sent yet.
    expect(b.locator("#messages .msg")).to_have_count(0)

    # One more key, then Enter. Alice's page stops announcing typing only
    # after 3 s idle and the server times it out after 5 s, so an indicator
    # gone within 2.5 s of the last key went because the message was sent.
    a.locator("#input").press_sequentially("ere?")
    a.locator("#input").press("Enter")
    started = a.evaluate("performance.now()")
    expect(bob.msg("are you there?")).to_have_count(1, timeout=2_500)
    expect(b.locator("#typing")).to_have_text("", timeout=2_500)
    elapsed = a.evaluate("performance.now()") - started
    assert elapsed < 2_500, f"the indicator took {elapsed:.0f} ms to clear"
    # Alice's own page never shows herself typing.
    expect(a.locator("#typing")).to_have_text("")


def test_html_in_a_message_is_shown_as_text(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    payloads = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        '"><svg onload=alert(3)>',
    ]
    for payload in payloads:
        alice.send(payload)
    for payload in payloads:
        expect(bob.msg(payload)).to_have_count(1, timeout=TIMEOUT)
        expect(bob.msg(payload).locator(".msg-text")).to_have_text(payload, timeout=TIMEOUT)
        expect(alice.msg(payload)).to_have_attribute("data-state", "sent", timeout=TIMEOUT)

    # A later message proves everything before it was rendered (and an
    # <img src=x> would have failed to load long before it arrives).
    bob.send("done")
    expect(alice.msg("done")).to_have_count(1, timeout=TIMEOUT)
    for page in (a, b):
        # (The icons of a message's own Edit and Delete buttons are outside its body.)
        expect(
            page.locator("#messages img, #messages script, #messages .msg-body svg")
        ).to_have_count(0)
        texts = page.locator("#messages .msg-text").all_text_contents()
        assert texts == [*payloads, "done"]
    a.wait_for_timeout(500)
    assert alice.dialogs == [] and bob.dialogs == []


def test_nickname_dialog_first_visit_and_change(users) -> None:
    bob = users.new("bob")
    alice = users.new("alice", join=False)
    page = alice.open_page()

    # First visit: the dialog asks for a nickname and nothing connects yet.
    dialog = page.locator("#nick-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#nick-input")).to_be_focused()
    alice.screenshot("desktop-first-visit")
    page.wait_for_timeout(500)
    assert alice.sockets == [], "the page connected before a nickname was chosen"
    expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")

    page.locator("#nick-input").fill("alice")
    page.locator("#nick-input").press("Enter")
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    alice.wait_connected()
    expect(page.locator("#me")).to_have_text("alice", timeout=TIMEOUT)
    assert len(alice.sockets) == 1
    alice_id = alice.id()
    expect(bob.online(alice_id)).to_contain_text("alice", timeout=TIMEOUT)
    expect(bob.notices("alice joined")).to_have_count(1, timeout=TIMEOUT)

    # A returning visitor is not asked again and keeps the identity.
    page.reload()
    alice.wait_connected()
    expect(dialog).to_be_hidden()
    expect(page.locator("#me")).to_have_text("alice", timeout=TIMEOUT)
    assert alice.id() == alice_id

    # Changing the nickname: everyone sees a notice and the new name.
    page.locator("#nick-button").click()
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#nick-input")).to_have_value("alice")
    page.locator("#nick-input").fill("alice2")
    page.locator("#nick-submit").click()
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator("#me")).to_have_text("alice2", timeout=TIMEOUT)
    notice = bob.notices("alice is now alice2")
    expect(notice).to_have_count(1, timeout=TIMEOUT)
    expect(bob.online(alice_id)).to_contain_text("alice2", timeout=TIMEOUT)
    expect(alice.notices("alice is now alice2")).to_have_count(1, timeout=TIMEOUT)

    # Messages from now on carry the new name.
    alice.send("new name, same me")
    expect(bob.msg("new name, same me").locator(".msg-from")).to_have_text(
        "alice2", timeout=TIMEOUT
    )

    # A nickname someone online holds (in any case) is refused, in the dialog.
    b = bob.page
    b.locator("#nick-button").click()
    expect(b.locator("#nick-dialog")).to_be_visible(timeout=TIMEOUT)
    b.locator("#nick-input").fill("ALICE2")
    b.locator("#nick-submit").click()
    expect(b.locator("#nick-error")).to_contain_text("already taken", timeout=TIMEOUT)
    expect(b.locator("#nick-dialog")).to_be_visible()
    b.locator("#nick-cancel").click()
    expect(b.locator("#nick-dialog")).to_be_hidden(timeout=TIMEOUT)
    expect(b.locator("#me")).to_have_text("bob")
    expect(alice.online(bob.id())).to_contain_text("bob")
