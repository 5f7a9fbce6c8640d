"""Browser notifications for private messages that arrive while the tab is hidden.

``window.Notification`` is replaced by a recorder before the page's scripts
run (headless Chromium shows no notifications), and the page's visibility is
whatever the test says: ``document.visibilityState`` reads the recorder.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import User

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
}  # fmt: skip

#: Records every notification made and every permission request (with whether
#: a user's gesture was active then). A page hidden once stays hidden across
#: reloads (sessionStorage), so a reload can be tested hidden from its start.
RECORDER = """
(() => {
  const rec = {
    made: [], asked: [], last: null, permission: "PERMISSION",
    hidden: sessionStorage.getItem("test-hidden") === "1",
  };
  window.__notify = rec;
  class RecordedNotification {
    constructor(title, options = {}) {
      rec.made.push({ title, body: options.body, visibility: document.visibilityState });
      rec.last = this;
      this.onclick = null;
    }
    close() {}
    static get permission() { return rec.permission; }
    static requestPermission() {
      rec.asked.push(navigator.userActivation.isActive);
      rec.permission = "granted";
      return Promise.resolve("granted");
    }
  }
  window.Notification = RecordedNotification;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (rec.hidden ? "hidden" : "visible"),
  });
  Object.defineProperty(Document.prototype, "hidden", {
    configurable: true, get: () => rec.hidden,
  });
})();
"""


def recorded(page: Page) -> dict[str, Any]:
    rec: dict[str, Any] = page.evaluate("({made: __notify.made, asked: __notify.asked})")
    return rec


def hide(page: Page) -> None:
    page.evaluate(
        """() => {
            __notify.hidden = true;
            sessionStorage.setItem("test-hidden", "1");
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )


def private_to(sender: User, recipient_id: str, text: str) -> int:
    """``sender`` writes ``text`` in their conversation with the recipient; returns its id."""
    page = sender.page
    page.locator(f'#conversations [data-conv="{recipient_id}"]').click()
    mine = sender.send(text)
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    return int(mine.get_attribute("data-id") or 0)


def test_a_private_message_notifies_only_live_and_only_while_hidden(users) -> None:
    alice = users.new("alice", join=False, permissions=["notifications"])
    alice.context.add_init_script(RECORDER.replace("PERMISSION", "granted"))
    a = alice.join()
    bob = users.new("bob")
    alice_id, bob_id = alice.id(), bob.id()
    ids = "window.quartchat.state.messageIds"
    # Nothing on load, and no asking: the permission is already granted.
    assert recorded(a) == {"made": [], "asked": []}
    expect(a.locator("#notify-button")).to_be_hidden()
    expect(a.locator("#notify-note")).to_contain_text("notify you")

    # Visible: a private message notifies no one.
    bob.online(alice_id).get_by_role("button").click()
    seen = private_to(bob, alice_id, "while you look")
    expect(a.locator(f'#conversations [data-conv="{bob_id}"]')).to_have_count(1, timeout=TIMEOUT)
    assert seen in a.evaluate(ids)
    # Hidden: a public message notifies no one either.
    hide(alice.page)
    bob.page.locator('#conversations [data-conv="all"]').click()
    bob.send("public while hidden")
    expect(alice.msg("public while hidden")).to_have_count(1, timeout=TIMEOUT)
    assert recorded(a)["made"] == []

    # Hidden and private: one notification, from bob, with the text.
    private_to(bob, alice_id, "psst <b>alice</b>")
    a.wait_for_function("() => __notify.made.length > 0", timeout=TIMEOUT)
    assert recorded(a)["made"] == [
        {"title": "bob (private)", "body": "psst <b>alice</b>", "visibility": "hidden"}
    ]
    # Clicking it opens the conversation with bob.
    assert a.evaluate("window.quartchat.state.conversation") == "all"
    a.evaluate("__notify.last.onclick(new Event('click'))")
    assert a.evaluate("window.quartchat.state.conversation") == bob_id
    expect(alice.msg("psst <b>alice</b>")).to_have_count(1)

    # Replayed after a reconnect: no notification.
    alice.context.set_offline(True)
    expect(a.locator("#status")).to_have_attribute("data-state", "offline", timeout=TIMEOUT)
    away = private_to(bob, alice_id, "while you were away")
    alice.context.set_offline(False)
    a.wait_for_function(f"() => {ids}.includes({away})", timeout=30_000)
    assert len(recorded(a)["made"]) == 1

    # A reload, hidden from its start: history and replay notify no one.
    a.reload()
    alice.wait_connected()
    a.wait_for_function(f"() => {ids}.includes({away})", timeout=TIMEOUT)
    assert a.evaluate("document.visibilityState") == "hidden"
    assert recorded(a) == {"made": [], "asked": []}


def test_permission_is_asked_only_from_a_click_on_a_phone(users) -> None:
    carol = users.new("carol", join=False, **PHONE)
    carol.context.add_init_script(RECORDER.replace("PERMISSION", "default"))
    c = carol.join()
    c.reload()
    carol.wait_connected()
    assert recorded(c)["asked"] == []
    # The control sits in the online drawer.
    c.locator("#sidebar-toggle").click()
    button = c.get_by_role("button", name="Notify me of private messages")
    expect(button).to_be_visible(timeout=TIMEOUT)
    carol.screenshot("phone-notify")
    assert recorded(c)["asked"] == []
    button.click()
    expect(button).to_be_hidden(timeout=TIMEOUT)
    expect(c.locator("#notify-note")).to_contain_text("notify you")
    # Asked once, while the click's user activation was active.
    assert recorded(c)["asked"] == [True]
