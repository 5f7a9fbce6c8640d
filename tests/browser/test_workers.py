"""Two workers, one chat: pages on different server processes sharing one Redis.

Worker A and worker B are two ``hypercorn`` processes on two ports, as two
hosts would run them, both pointed at this test's own ``redis-server``.
alice and carol use worker A, bob uses worker B; each must see the other
worker's users exactly as if everyone were on one server. On two servers
that do not share Redis (each on its own SQLite file) none of this holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import ChatServer, running_server

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000


@pytest.fixture
def server_env(redis_url: str) -> dict[str, str]:
    """Both workers share this test's Redis; a leave is announced at once."""
    return {"QUARTCHAT_REDIS_URL": redis_url, "QUARTCHAT_LEAVE_GRACE": "0"}


@pytest.fixture
def worker_b(tmp_path: Path, server_env: dict[str, str]) -> Iterator[ChatServer]:
    """A second server process on a port of its own (the test's ``server`` is worker A)."""
    with running_server(tmp_path / "worker-b", server_env) as running:
        yield running


def test_users_on_two_workers_share_one_chat(users, server, worker_b) -> None:
    alice = users.new("alice")
    bob = users.new("bob", server=worker_b)
    carol = users.new("carol")
    a, b, c = alice.page, bob.page, carol.page
    alice_id, bob_id, carol_id = alice.id(), bob.id(), carol.id()
    # Each page's socket is on its own worker's port.
    assert alice.sockets == [f"ws://127.0.0.1:{server.port}/ws"]
    assert bob.sockets == [f"ws://127.0.0.1:{worker_b.port}/ws"]

    # Online: everyone is in everyone's list, whichever worker they are on.
    for page in (a, b, c):
        expect(page.locator("#online li")).to_have_count(3, timeout=TIMEOUT)
    expect(alice.online(bob_id)).to_contain_text("bob")
    expect(bob.online(alice_id)).to_contain_text("alice")
    expect(bob.online(carol_id)).to_contain_text("carol")

    # Typing, both ways across the workers.
    a.locator("#input").click()
    a.locator("#input").press_sequentially("hello fr", delay=30)
    expect(b.locator("#typing")).to_contain_text("alice is typing", timeout=TIMEOUT)
    b.locator("#input").click()
    b.locator("#input").press_sequentially("hi al", delay=30)
    expect(a.locator("#typing")).to_contain_text("bob is typing", timeout=TIMEOUT)

    # Public messages, both ways; sending clears the sender's indicator.
    mine = alice.send("hello from worker A")
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(bob.msg("hello from worker A")).to_have_count(1, timeout=TIMEOUT)
    expect(b.locator("#typing")).not_to_contain_text("alice", timeout=TIMEOUT)
    bob.send("hi alice, this is worker B")
    for user in (alice, carol):
        expect(user.msg("hi alice, this is worker B")).to_have_count(1, timeout=TIMEOUT)
    expect(a.locator("#typing")).to_have_text("", timeout=TIMEOUT)

    # A private message from A to B, and the answer from B to A.
    alice.online(bob_id).get_by_role("button").click()
    expect(a.locator("#input")).to_have_attribute("placeholder", "Private message to bob")
    secret = "psst bob, only for you"
    sent = alice.send(secret)
    expect(sent).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    dm_id = int(sent.get_attribute("data-id") or 0)
    tab = b.locator(f'#conversations [data-conv="{alice_id}"]')
    expect(tab).to_contain_text("alice", timeout=TIMEOUT)
    tab.click()
    theirs = bob.msg(secret)
    expect(theirs).to_have_class("msg private", timeout=TIMEOUT)
    expect(theirs).to_have_attribute("data-id", str(dm_id))
    answer = bob.send("got it, alice")
    expect(answer).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    answer_id = int(answer.get_attribute("data-id") or 0)
    expect(alice.msg("got it, alice")).to_have_class("msg private", timeout=TIMEOUT)
    expect(a.locator("#messages .msg-text")).to_have_text([secret, "got it, alice"])

    # Then bob says something public. carol, on alice's worker, gets it after
    # both private messages were committed, and has neither of them.
    b.locator('#conversations [data-conv="all"]').click()
    bob.send("bye all")
    expect(carol.msg("bye all")).to_have_count(1, timeout=TIMEOUT)
    expect(c.locator("#conversations [data-conv]")).to_have_count(1)
    expect(c.locator("#messages .msg-text")).to_have_text(
        ["hello from worker A", "hi alice, this is worker B", "bye all"]
    )
    known = c.evaluate("window.quartchat.state.messageIds")
    assert dm_id not in known and answer_id not in known and len(known) == 3

    # bob closes his page on worker B: he leaves the lists on worker A.
    b.close()
    for page in (a, c):
        expect(page.locator("#online li")).to_have_count(2, timeout=TIMEOUT)
    expect(alice.notices("bob left")).to_have_count(1, timeout=TIMEOUT)
