"""The composer: length feedback before sending, trimming as the server does,
and a draft per conversation that survives a reload."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import WebSocketRoute, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
LIMIT = 2000


def sends(user) -> list[str]:
    return [f["text"] for f in user.frames_sent if f.get("type") == "send"]


def test_counter_appears_near_the_limit_and_send_stops_past_it(users) -> None:
    alice = users.new("alice")
    a = alice.page
    count, send, box = a.locator("#composer-count"), a.locator("#send"), a.locator("#input")

    box.fill("x" * 1500)
    expect(count).to_be_hidden()
    # Code points, as the server counts: each emoji is one, not two.
    box.fill("😀" * 1850)
    expect(count).to_be_visible()
    expect(count).to_have_text("1,850 / 2,000")
    expect(send).to_be_enabled()

    box.fill("😀" * (LIMIT + 3))
    expect(count).to_have_text("2,003 / 2,000: too long to send, 3 over the limit")
    expect(send).to_be_disabled()
    expect(box).to_have_attribute("aria-invalid", "true")
    # The reason is beside the composer (and read with it), not over the text.
    expect(count).to_be_in_viewport(ratio=1)
    assert "composer-count" in (box.get_attribute("aria-describedby") or "").split()
    box.press("Enter")
    a.wait_for_timeout(300)
    assert sends(alice) == []
    expect(box).to_have_value("😀" * (LIMIT + 3))
    expect(a.locator("#toast")).to_be_hidden()

    # Surrounding spaces do not count: the server trims them too.
    box.fill("  \n" + "y" * LIMIT + "\n  ")
    expect(count).to_have_text("2,000 / 2,000")
    expect(send).to_be_enabled()
    box.press("Enter")
    expect(alice.msg("y" * LIMIT)).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(count).to_be_hidden()


def test_the_limit_comes_from_the_servers_welcome(users) -> None:
    alice = users.new("alice", join=False)

    def smaller_limit(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if isinstance(message, str) and '"type":"welcome"' in message:
                lines = [json.loads(line) for line in message.split("\n")]
                lines[0]["limits"]["text"] = 100
                message = "\n".join(json.dumps(line) for line in lines)
            ws.send(message)

        server.on_message(from_server)
        ws.on_message(server.send)

    alice.context.route_web_socket(re.compile(r"/ws$"), smaller_limit)
    a = alice.join()
    a.locator("#input").fill("z" * 101)
    expect(a.locator("#composer-count")).to_have_text(
        "101 / 100: too long to send, 1 over the limit"
    )
    expect(a.locator("#send")).to_be_disabled()


def test_page_trims_as_the_server_does_and_invisible_only_is_not_sent(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a = alice.page
    raw = "\n\n \t hello   world \u3000\n\n"
    a.locator("#input").fill(raw)
    a.locator("#input").press("Enter")
    mine = alice.msg("hello   world")
    expect(mine).to_have_count(1)  # shown at once, already trimmed
    expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(bob.msg("hello   world")).to_have_count(1, timeout=TIMEOUT)
    assert sends(alice) == ["hello   world"]

    # Only spaces, zero-width characters, joiners and direction marks: nothing to send.
    for blank in (" \n\t ", "\u200b\u200d\u200e\u2060", "\u00a0\u200f\ufeff\ufe0f\u3164"):
        a.locator("#input").fill(blank)
        a.locator("#input").press("Enter")
    a.wait_for_timeout(300)
    assert sends(alice) == ["hello   world"]
    expect(a.locator("#messages .msg")).to_have_count(1)


def test_drafts_survive_a_reload_per_conversation(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    a = alice.page
    box = a.locator("#input")
    box.press_sequentially("half a thought for everyone")
    alice.online(bob.id()).click()
    expect(box).to_have_value("")  # each conversation has its own draft
    box.press_sequentially("something just for bob")

    a.reload()
    alice.wait_connected()
    expect(box).to_have_value("half a thought for everyone")
    a.locator(f'#conversations [data-conv="{bob.id()}"]').click()
    expect(box).to_have_value("something just for bob")
    box.press("Enter")
    sent = alice.msg("something just for bob")
    expect(sent).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    expect(box).to_have_value("")

    # Sent drafts are gone; unsent ones stay.
    a.reload()
    alice.wait_connected()
    expect(box).to_have_value("half a thought for everyone")
    a.locator(f'#conversations [data-conv="{bob.id()}"]').click()
    expect(box).to_have_value("")
