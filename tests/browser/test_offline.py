"""Losing the network: catching up after it, and the outbox surviving a reload."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import WebSocketRoute, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
#: How long a page may take to notice the network is back and reconnect: it
#: reacts to the browser's online event at once, and otherwise its liveness
#: check and backoff (at most 10 s apart) bring it back.
RECONNECT = 30_000


def test_offline_user_catches_up_once_in_order(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    alice.send("before")
    expect(bob.msg("before")).to_have_count(1, timeout=TIMEOUT)

    bob.context.set_offline(True)
    expect(b.locator("#status")).to_have_attribute("data-state", "offline", timeout=RECONNECT)
    texts = [f"while you were away {n}" for n in range(1, 6)]
    for text in texts:
        alice.send(text)
    for text in texts:
        expect(alice.msg(text)).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    # All five are stored; none reached bob's page while it was offline.
    pattern = re.compile(r"^while you were away \d$")
    away = b.locator("#messages .msg-text").filter(has_text=pattern)
    expect(away).to_have_count(0)

    bob.context.set_offline(False)
    expect(b.locator("#status")).to_have_attribute("data-state", "connected", timeout=RECONNECT)
    # Each exactly once, in the order sent, after what came before.
    expect(away).to_have_text(texts, timeout=TIMEOUT)
    expect(b.locator("#messages .msg-text")).to_have_text(["before", *texts], timeout=TIMEOUT)
    # Live traffic flows again, and nothing of the replay repeats after it.
    alice.send("welcome back")
    expect(bob.msg("welcome back")).to_have_count(1, timeout=TIMEOUT)
    expect(b.locator("#messages .msg-text")).to_have_text(
        ["before", *texts, "welcome back"], timeout=TIMEOUT
    )
    ids = [int(x) for x in b.locator("#messages .msg").evaluate_all(
        "els => els.map(e => e.dataset.id)"
    )]  # fmt: skip
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    expect(a.locator("#messages .msg")).to_have_count(7)


def test_message_written_offline_survives_reload_and_is_sent_once(users, server) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    b = bob.page

    # The page's own socket is let through to the server, unless `blocked`:
    # then it is closed as soon as it opens, as if the server were unreachable,
    # while the page itself still loads over HTTP. (set_offline alone cannot
    # do this: it blocks the reload too.)
    blocked = False
    refused = 0

    def gate(ws: WebSocketRoute) -> None:
        nonlocal refused
        if blocked:
            refused += 1
            ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()

    bob.context.route_web_socket(re.compile(r"/ws$"), gate)

    bob.context.set_offline(True)
    expect(b.locator("#status")).to_have_attribute("data-state", "offline", timeout=RECONNECT)
    text = "written on the train"
    mine = bob.send(text)
    expect(mine).to_have_attribute("data-state", "pending", timeout=TIMEOUT)
    outbox = b.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))")
    assert [e["text"] for e in outbox] == [text]
    offset = outbox[0]["offset"]

    # Reload while the server cannot be reached: the message is still there,
    # pending, from the stored outbox.
    blocked = True
    bob.context.set_offline(False)
    b.reload()
    mine = bob.msg(text)
    expect(mine).to_have_count(1, timeout=TIMEOUT)
    expect(mine).to_have_attribute("data-state", "pending")
    expect(mine).to_have_attribute("data-offset", offset)
    expect(b.locator("#status")).to_have_attribute("data-state", "reconnecting")
    # The page did try to connect after the reload, and was refused.
    deadline = time.monotonic() + TIMEOUT / 1000
    while refused < 1 and time.monotonic() < deadline:
        b.wait_for_timeout(50)
    assert refused >= 1, "the reloaded page never tried to connect"
    expect(b.locator("#status")).not_to_have_attribute("data-state", "connected")
    assert server.count(text) == 0

    # The server is reachable again: the page reconnects by itself, sends the
    # message once, and it turns "sent".
    blocked = False
    expect(b.locator("#status")).to_have_attribute("data-state", "connected", timeout=RECONNECT)
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(alice.msg(text)).to_have_count(1, timeout=TIMEOUT)
    # A later message from bob reaches alice after it: still one copy each.
    bob.send("and now live")
    expect(alice.msg("and now live")).to_have_count(1, timeout=TIMEOUT)
    expect(alice.msg(text)).to_have_count(1)
    expect(bob.msg(text)).to_have_count(1)
    expect(alice.page.locator("#messages .msg-text")).to_have_text([text, "and now live"])
    assert server.count(text) == 1
    assert b.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))") == []


def test_pages_survive_a_server_restart(users, server) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a, b = alice.page, bob.page
    alice.send("before the restart")
    expect(bob.msg("before the restart")).to_have_count(1, timeout=TIMEOUT)

    # The server goes away (SIGTERM: it closes sockets with 1001). Both pages
    # say so, and what bob writes meanwhile waits in his outbox.
    server.stop()
    for page in (a, b):
        expect(page.locator("#status")).to_have_attribute(
            "data-state", "reconnecting", timeout=TIMEOUT
        )
    mine = bob.send("written while the server was down")
    expect(mine).to_have_attribute("data-state", "pending")

    # Same port, same database: both pages come back by themselves, bob's
    # message goes out once, and nothing before it repeats.
    server.start()
    for page in (a, b):
        expect(page.locator("#status")).to_have_attribute(
            "data-state", "connected", timeout=RECONNECT
        )
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(alice.msg("written while the server was down")).to_have_count(1, timeout=TIMEOUT)
    alice.send("after the restart")
    expect(bob.msg("after the restart")).to_have_count(1, timeout=TIMEOUT)
    expected = ["before the restart", "written while the server was down", "after the restart"]
    for page in (a, b):
        expect(page.locator("#messages .msg-text")).to_have_text(expected, timeout=TIMEOUT)
    assert server.count("written while the server was down") == 1
    # Both are still listed online for each other.
    expect(alice.online(bob.id())).to_have_count(1)
    expect(bob.online(alice.id())).to_have_count(1)
