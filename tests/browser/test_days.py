"""Day dividers and grouping: live, replayed and prepended history all agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
#: Readers in these tests live in UTC and read US English dates.
READER = {"timezone_id": "UTC", "locale": "en-US"}


@pytest.fixture
def server_env() -> dict[str, str]:
    # A first visit gets the newest three; older ones come as a history page
    # prepended above them, across a day boundary.
    return {"QUARTCHAT_BACKLOG": "3"}


def long_date(ts: int, today: datetime) -> str:
    """What en-US shows for a day before yesterday: "Monday, November 23"."""
    day = datetime.fromtimestamp(ts / 1000, UTC)
    label = f"{day:%A}, {day:%B} {day.day}"
    return label if day.year == today.year else f"{label}, {day.year}"


def layout(page: Page) -> list[str]:
    """The shown pane as lines: "day: <label>", or "<text>" with " (grouped)"."""
    lines: list[str] = page.locator("#messages .pane").evaluate(
        """pane => [...pane.children].filter(n => n.matches('.day, .msg')).map(n =>
            n.matches('.day') ? 'day: ' + n.textContent
            : n.querySelector('.msg-text').textContent
              + (n.matches('.grouped') ? ' (grouped)' : ''))"""
    )
    return lines


def test_day_dividers_and_groups_stay_right_live_in_replay_and_in_history(users, server) -> None:
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    midnight = int(today.timestamp() * 1000)
    seeded = [
        ("three days ago", midnight - 3 * DAY + 10 * HOUR),
        ("late night", midnight - DAY - 2 * MINUTE),  # the day before yesterday, 23:58
        ("just before midnight", midnight - DAY - MINUTE),
        ("midnight", midnight - DAY),  # yesterday, 00:00
        ("after midnight", midnight - DAY + MINUTE),
        ("at noon", midnight - DAY + 12 * HOUR),
        ("a minute later", midnight - DAY + 12 * HOUR + MINUTE),
    ]
    server.seed(seeded)
    history = [
        f"day: {long_date(seeded[0][1], today)}",
        "three days ago",
        f"day: {long_date(seeded[1][1], today - timedelta(days=1))}",
        "late night",
        "just before midnight (grouped)",
        "day: Yesterday",
        "midnight",  # one minute after the one above, but on another day
        "after midnight (grouped)",
        "at noon",  # same person, same day, but hours later
        "a minute later (grouped)",
    ]

    alice = users.new("alice", **READER)
    a = alice.page
    # The backlog held the last three; the older page was prepended above
    # them and the "Yesterday" divider moved up to its first message.
    expect(alice.msg("three days ago")).to_have_count(1, timeout=TIMEOUT)
    expect(a.locator("#messages .msg")).to_have_count(len(seeded))
    assert layout(a) == history

    bob = users.new("bob", **READER)
    bob.send("hello today")
    bob.send("and again")
    expect(alice.msg("and again")).to_have_count(1, timeout=TIMEOUT)
    live = ["day: Today", "hello today", "and again (grouped)"]
    assert layout(a) == history + live
    # Someone else in between ends a group.
    alice.send("hi bob")
    bob.send("hi alice")
    expect(alice.msg("hi alice")).to_have_count(1, timeout=TIMEOUT)
    live += ["hi bob", "hi alice"]
    assert layout(a) == history + live
    # The dividers are labelled for readers, and a phone can see them.
    expect(a.locator("#messages .day").last).to_have_attribute("role", "separator")

    # Replay after a reconnect, and a reload from the stored cursor.
    alice.context.set_offline(True)
    expect(a.locator("#status")).to_have_attribute("data-state", "offline", timeout=TIMEOUT)
    bob.send("while you were away")
    alice.context.set_offline(False)
    expect(alice.msg("while you were away")).to_have_count(1, timeout=30_000)
    live += ["while you were away (grouped)"]
    assert layout(a) == history + live
    a.reload()
    alice.wait_connected()
    expect(alice.msg("three days ago")).to_have_count(1, timeout=TIMEOUT)
    expect(a.locator("#messages .msg")).to_have_count(len(history) - 3 + len(live) - 1)
    assert layout(a) == history + live
