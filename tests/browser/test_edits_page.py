"""Editing and deleting messages in the page (issue 22): an edit made in
place and a delete after a confirmation reach another user live, one who was
away in the replay, and everyone after a reload, from history; an edit
written while the server cannot be reached survives a reload and is stored
once; edits and deletes of messages a page has not loaded still move its
cursor."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import WebSocketRoute, expect

from .conftest import Users
from .moderation_helpers import by_id, delete, edit, press, sent
from .rooms_helpers import PHONE, TIMEOUT

pytestmark = pytest.mark.browser

SIZES = {"desktop": {}, "phone": PHONE}
OFFSET = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@pytest.fixture(params=sorted(SIZES))
def size(request: pytest.FixtureRequest) -> dict[str, Any]:
    return SIZES[request.param]


def test_an_edit_and_a_delete_reach_others_live_in_replay_and_after_a_reload(
    users: Users, size: dict[str, Any]
) -> None:
    alice = users.new("alice", **size)
    bob = users.new("bob")
    carol = users.new("carol", **PHONE)
    a, b, c = alice.page, bob.page, carol.page
    expect(a.locator("#online li")).to_have_count(3, timeout=TIMEOUT)

    first = sent(alice, "see you at 5")
    expect(bob.msg("see you at 5")).to_have_count(1, timeout=TIMEOUT)
    expect(carol.msg("see you at 5")).to_have_count(1, timeout=TIMEOUT)
    # Carol is away while it changes: she gets the edit and the delete in
    # her replay when she is back.
    carol.context.set_offline(True)
    expect(c.locator("#status")).to_have_attribute("data-state", "offline", timeout=TIMEOUT)

    # Escape cancels: nothing changes, nothing is sent, focus goes back.
    mine = by_id(a, first)
    press(mine, ".msg-edit")
    box = mine.locator(".msg-edit-input")
    expect(box).to_be_focused()
    expect(box).to_have_value("see you at 5")
    box.fill("never mind")
    box.press("Escape")
    expect(box).to_have_count(0)
    expect(mine.locator(".msg-text")).to_have_text("see you at 5")
    expect(mine.locator(".msg-edit")).to_be_focused()
    assert not [f for f in alice.frames_sent if f.get("type") == "edit"]

    # Enter saves: in place at once, "edited" with the edit's time.
    edit(mine, "see you at 6")
    expect(mine.locator(".msg-text")).to_have_text("see you at 6")
    expect(mine.locator(".msg-edited")).to_have_text("edited", timeout=TIMEOUT)
    expect(mine).not_to_have_attribute("data-edit", re.compile("."), timeout=TIMEOUT)
    expect(mine.locator(".msg-edited")).to_have_attribute("title", re.compile(r"^Edited \S"))
    theirs = by_id(b, first)
    expect(theirs.locator(".msg-text")).to_have_text("see you at 6", timeout=TIMEOUT)
    expect(theirs.locator(".msg-edited")).to_have_text("edited")
    expect(theirs.locator(".msg-edited")).to_have_attribute("title", re.compile(r"^Edited \S"))
    edits = [f for f in alice.frames_sent if f.get("type") == "edit"]
    assert len(edits) == 1, edits
    assert edits[0]["target"] == first and edits[0]["text"] == "see you at 6"
    assert OFFSET.match(edits[0]["client_offset"])
    # Bob may not edit or delete alice's message: no buttons for him.
    expect(theirs.locator(".msg-edit")).to_have_count(0)
    theirs.hover()
    expect(theirs.locator(".msg-delete")).to_be_hidden()

    # A delete asks first; Cancel keeps the message.
    secret = sent(alice, "my password is hunter2")
    expect(bob.msg("my password is hunter2")).to_have_count(1, timeout=TIMEOUT)
    press(by_id(a, secret), ".msg-delete")
    expect(a.locator("#confirm-dialog")).to_be_visible()
    expect(a.locator("#confirm-quote")).to_have_text("my password is hunter2")
    a.locator("#confirm-cancel").click()
    expect(a.locator("#confirm-dialog")).to_be_hidden()
    expect(bob.msg("my password is hunter2")).to_have_count(1)
    delete(by_id(a, secret))
    for page in (a, b):
        expect(by_id(page, secret).locator(".msg-text")).to_have_text(
            "message deleted", timeout=TIMEOUT
        )
        expect(by_id(page, secret).locator(".msg-edit, .msg-delete")).to_have_count(0)
        assert "hunter2" not in page.locator("#messages").inner_text()
    deletes = [f for f in alice.frames_sent if f.get("type") == "delete"]
    assert [f["target"] for f in deletes] == [secret], deletes

    # The entries moved bob's cursor past the message deleted.
    cursor = b.evaluate("window.quartchat.state.cursor")
    assert cursor > secret

    # Carol, back: her replay brings the edit and the delete.
    carol.context.set_offline(False)
    carol.wait_connected()
    expect(by_id(c, first).locator(".msg-text")).to_have_text("see you at 6", timeout=TIMEOUT)
    expect(by_id(c, first).locator(".msg-edited")).to_have_text("edited")
    expect(by_id(c, secret).locator(".msg-text")).to_have_text("message deleted")
    deadline = time.monotonic() + TIMEOUT / 1000
    while c.evaluate("window.quartchat.state.cursor") < cursor and time.monotonic() < deadline:
        c.wait_for_timeout(50)
    assert c.evaluate("window.quartchat.state.cursor") == cursor

    # After a reload, from history: as it is now.
    for user in (alice, bob, carol):
        user.page.reload()
        user.wait_connected()
        page = user.page
        expect(by_id(page, first).locator(".msg-text")).to_have_text(
            "see you at 6", timeout=TIMEOUT
        )
        expect(by_id(page, first).locator(".msg-edited")).to_have_text("edited")
        expect(by_id(page, secret).locator(".msg-text")).to_have_text("message deleted")
        assert "hunter2" not in page.locator("#messages").inner_text()
    # Her own message can still be edited after the reload; the deleted one not.
    expect(by_id(a, first).locator(".msg-edit")).to_have_count(1)
    expect(by_id(a, secret).locator(".msg-edit, .msg-delete")).to_have_count(0)


def test_an_edit_written_offline_survives_a_reload_and_is_stored_once(users: Users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a = alice.page
    target = sent(alice, "lunch at noon")
    expect(bob.msg("lunch at noon")).to_have_count(1, timeout=TIMEOUT)

    # Alice's socket is let through unless `blocked`: then it is closed as
    # it opens, as if the server were unreachable (the page still loads).
    blocked = False

    def gate(ws: WebSocketRoute) -> None:
        if blocked:
            ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()

    alice.context.route_web_socket(re.compile(r"/ws$"), gate)
    alice.context.set_offline(True)
    expect(a.locator("#status")).to_have_attribute("data-state", "offline", timeout=TIMEOUT)
    mine = by_id(a, target)
    edit(mine, "lunch at one")
    expect(mine.locator(".msg-text")).to_have_text("lunch at one")
    expect(mine).to_have_attribute("data-edit", "pending")
    expect(mine.locator(".msg-status")).to_have_text("saving the edit…")
    stored = a.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))")
    assert [(e["kind"], e["target"], e["text"]) for e in stored] == [
        ("edit", target, "lunch at one")
    ]
    offset = stored[0]["offset"]

    blocked = True
    alice.context.set_offline(False)
    a.reload()
    expect(a.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=TIMEOUT)
    assert bob.msg("lunch at one").count() == 0

    blocked = False
    alice.wait_connected()
    mine = by_id(a, target)
    expect(mine.locator(".msg-text")).to_have_text("lunch at one", timeout=TIMEOUT)
    expect(mine.locator(".msg-edited")).to_have_text("edited", timeout=TIMEOUT)
    expect(mine).not_to_have_attribute("data-edit", re.compile("."))
    expect(bob.msg("lunch at one")).to_have_count(1, timeout=TIMEOUT)
    expect(bob.msg("lunch at noon")).to_have_count(0)
    edits = [f for f in alice.frames_sent if f.get("type") == "edit"]
    assert edits and {f["client_offset"] for f in edits} == {offset}, edits
    assert a.evaluate("JSON.parse(localStorage.getItem('quartchat.outbox'))") == []
    # One edit stored: bob's page got exactly one `edited` for it.
    got = bob.page.evaluate("window.quartchat.state.cursor")
    assert got > target


#: A fake server for one page: a welcome, two messages, then an `edited` and
#: a `deleted` of a message the page never loaded (id 3), and one of a
#: message it did load (id 10).
def fake_chat(ws: WebSocketRoute) -> None:
    def on_message(message: str | bytes) -> None:
        frame = json.loads(message)
        if frame.get("type") != "hello":
            return
        me = {"id": "u-me", "nick": "dora"}
        them = {"id": "u-them", "nick": "eve"}
        lines = [
            {"type": "welcome", "user": me, "token": "t" * 32, "online": [me, them],
             "last_id": 11, "epoch": "e1", "recovered": False,
             "rooms": [{"room": {"id": "general", "name": "general", "kind": "public",
                                 "topic": ""}, "role": "member", "read_id": 0, "unread": 0,
                        "mentions": 0}], "direct": []},
            {"type": "message", "id": 10, "from": them, "to": None, "text": "ten",
             "ts": 1_764_000_000_000, "room": "general"},
            {"type": "message", "id": 11, "from": them, "to": None, "text": "eleven",
             "ts": 1_764_000_001_000, "room": "general", "edited_ts": 1_764_000_002_000},
            {"type": "edited", "id": 12, "target": 3, "text": "not loaded", "room": "general",
             "ts": 1_764_000_003_000, "from": them, "to": None},
            {"type": "deleted", "id": 13, "target": 4, "room": "general", "by": them,
             "ts": 1_764_000_004_000, "from": them, "to": None},
            {"type": "edited", "id": 14, "target": 10, "text": "ten, fixed", "room": "general",
             "ts": 1_764_000_005_000, "from": them, "to": None},
        ]  # fmt: skip
        ws.send("\n".join(json.dumps(line) for line in lines))

    ws.on_message(on_message)


def test_entries_of_messages_not_loaded_move_the_cursor(users: Users) -> None:
    dora = users.new("dora", join=False)
    dora.context.route_web_socket(re.compile(r"/ws$"), fake_chat)
    dora.context.add_init_script(
        "localStorage.setItem('quartchat.wanted_nick', JSON.stringify('dora'))"
    )
    page = dora.open_page()
    dora.wait_connected(page)
    expect(by_id(page, 10).locator(".msg-text")).to_have_text("ten, fixed", timeout=TIMEOUT)
    expect(by_id(page, 10).locator(".msg-edited")).to_have_count(1)
    expect(by_id(page, 11).locator(".msg-edited")).to_have_attribute(
        "title", re.compile(r"^Edited ")
    )
    assert page.evaluate("window.quartchat.state.messageIds") == [10, 11]
    expect(page.locator("#messages")).not_to_contain_text("not loaded")
    assert page.evaluate("window.quartchat.state.cursor") == 14
    assert page.evaluate("JSON.parse(localStorage.getItem('quartchat.last_id'))") == 14
