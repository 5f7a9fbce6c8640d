"""A message the server never acknowledges: retries, the failed state, Retry.

Slow on purpose: the page waits ACK_TIMEOUT_MS (10 s) for each of its four
sends (the first and MAX_RETRIES = 3 retries) before it gives up, so the one
test here takes about 45 s.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import WebSocketRoute, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
#: The page's ack timeout and retry budget (static/js/constants.js).
ACK_TIMEOUT_S = 10
SENDS = 1 + 3
#: Time allowed for all four sends and the final ack timeout (40 s), with margin.
GIVE_UP = 60_000


def decode(message: str | bytes) -> dict[str, Any] | None:
    try:
        frame = json.loads(message)
    except (TypeError, ValueError):
        return None
    return frame if isinstance(frame, dict) else None


def test_unacked_message_fails_after_retries_and_retry_sends_it_once(users, server) -> None:
    """Slow (~45 s): four unanswered sends, 10 s apart, before the page gives up.

    Alice's socket is proxied to the real server by Playwright; while
    ``swallow`` is set, her "send" frames are recorded and dropped, so the
    server never stores or acks them. Everything else (hello, pings, pongs,
    presence, acks) passes both ways.
    """
    bob = users.new("bob")
    alice = users.new("alice", join=False)

    swallow = True
    swallowed: list[tuple[float, dict[str, Any]]] = []
    forwarded_sends: list[dict[str, Any]] = []

    def proxy(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = decode(message)
            if frame is not None and frame.get("type") == "send":
                if swallow:
                    swallowed.append((time.monotonic(), frame))
                    return
                forwarded_sends.append(frame)
            upstream.send(message)

        ws.on_message(from_page)
        upstream.on_message(lambda message: ws.send(message))

    alice.context.route_web_socket(re.compile(r"/ws$"), proxy)
    a = alice.join()
    expect(alice.online(bob.id())).to_have_count(1, timeout=TIMEOUT)

    text = "lost in transit"
    mine = alice.send(text)
    expect(mine).to_have_count(1, timeout=TIMEOUT)
    expect(mine).to_have_attribute("data-state", "pending")
    expect(mine).not_to_have_attribute("data-id", re.compile(r".*"))
    offset = mine.get_attribute("data-offset")
    assert offset

    # Wait for the fourth send; until the ack timeout after it runs out, the
    # message stays pending.
    deadline = time.monotonic() + GIVE_UP / 1000
    while len(swallowed) < SENDS and time.monotonic() < deadline:
        a.wait_for_timeout(100)
    assert len(swallowed) == SENDS, f"only {len(swallowed)} sends in {GIVE_UP} ms"
    expect(mine).to_have_attribute("data-state", "pending")
    expect(mine.locator(".retry")).to_have_count(0)

    # Then it fails, and offers Retry and Discard.
    expect(mine).to_have_attribute("data-state", "failed", timeout=GIVE_UP)
    failed_at = time.monotonic()
    retry = mine.get_by_role("button", name="Retry", exact=True)
    expect(retry).to_be_visible()
    expect(mine.get_by_role("button", name="Discard this unsent message")).to_be_visible()
    expect(mine.locator(".msg-status")).to_contain_text("Not sent: no answer from the server")
    alice.screenshot("desktop-failed-send")

    # Exactly four sends, one per ack timeout, all the same message under the
    # same client_offset (so the server could have deduplicated them), and
    # none got through.
    frames = [frame for _, frame in swallowed]
    assert [f["client_offset"] for f in frames] == [offset] * SENDS
    assert [f["text"] for f in frames] == [text] * SENDS
    times = [t for t, _ in swallowed] + [failed_at]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(ACK_TIMEOUT_S - 1 < gap < ACK_TIMEOUT_S + 5 for gap in gaps), gaps
    assert forwarded_sends == []
    assert server.count(text) == 0
    expect(bob.msg(text)).to_have_count(0)
    stored = a.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))")
    assert [(e["offset"], e["state"]) for e in stored] == [(offset, "failed")]

    # The way is clear again. From the message box, Shift+Tab walks back
    # into the message list to the Retry button; Enter presses it.
    swallow = False
    expect(a.locator("#input")).to_be_focused()
    for _ in range(4):
        a.keyboard.press("Shift+Tab")
        if a.evaluate("document.activeElement.classList.contains('retry')"):
            break
    expect(retry).to_be_focused()
    a.keyboard.press("Enter")

    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"), timeout=TIMEOUT)
    message_id = mine.get_attribute("data-id") or ""
    expect(mine.locator(".retry, .discard")).to_have_count(0)
    # Retrying hands focus back to the message box.
    expect(a.locator("#input")).to_be_focused()
    theirs = bob.msg(text)
    expect(theirs).to_have_count(1, timeout=TIMEOUT)
    expect(theirs).to_have_attribute("data-id", message_id)
    expect(theirs.locator(".msg-from")).to_have_text("alice")

    # A later message reaches bob after it: still one copy everywhere, one
    # send of it went through, and one row holds it.
    alice.send("arrived after")
    expect(bob.msg("arrived after")).to_have_count(1, timeout=TIMEOUT)
    expect(bob.page.locator("#messages .msg-text")).to_have_text([text, "arrived after"])
    expect(alice.msg(text)).to_have_count(1)
    assert [f["client_offset"] for f in forwarded_sends if f["text"] == text] == [offset]
    assert server.count(text) == 1
    assert a.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))") == []
