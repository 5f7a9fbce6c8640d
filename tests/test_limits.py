"""Rate limits and typing expiry, on Trio's fake clock.

Both read ``trio.current_time()``; under ``autojump_clock`` a ``trio.sleep``
moves time forward exactly and at once, so refills and timeouts are checked
to the second without waiting and without depending on the machine's speed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from fakesession import running_hub
from quartchat.broker import Event
from quartchat.config import Settings
from quartchat.hub import Hub
from quartchat.limits import TokenBucket
from quartchat.models import User
from quartchat.protocol import Typing

TYPING_TIMEOUT = 5.0


def takes(bucket: TokenBucket, tries: int) -> int:
    """How many of ``tries`` takes, all at the current time, succeed."""
    now = trio.current_time()
    return sum(bucket.take(now) for _ in range(tries))


async def test_a_bucket_allows_its_burst_then_refills_at_its_rate(
    autojump_clock: MockClock,
) -> None:
    bucket = TokenBucket(rate=2.0, burst=5, now=trio.current_time())
    assert takes(bucket, 10) == 5  # a full bucket gives its burst, and no more

    await trio.sleep(1.0)
    assert takes(bucket, 10) == 2  # one second at 2/s

    await trio.sleep(0.25)
    assert takes(bucket, 10) == 0  # half a token is not a token
    await trio.sleep(0.25)
    assert takes(bucket, 10) == 1  # ...but it is kept: two halves make one


async def test_a_bucket_saves_up_no_more_than_its_burst(autojump_clock: MockClock) -> None:
    bucket = TokenBucket(rate=2.0, burst=5, now=trio.current_time())
    takes(bucket, 5)
    await trio.sleep(3600)
    assert takes(bucket, 10) == 5


async def test_a_take_can_cost_more_than_one_token(autojump_clock: MockClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now=trio.current_time())
    assert bucket.take(trio.current_time(), cost=3)
    await trio.sleep(2)
    assert not bucket.take(trio.current_time(), cost=3)  # 2 saved, nothing spent
    await trio.sleep(1)
    assert bucket.take(trio.current_time(), cost=3)


async def test_a_bucket_is_full_once_waiting_would_add_nothing(autojump_clock: MockClock) -> None:
    bucket = TokenBucket(rate=0.5, burst=2, now=trio.current_time())
    assert bucket.is_full(trio.current_time())
    takes(bucket, 1)
    assert not bucket.is_full(trio.current_time())
    await trio.sleep(1.9)
    assert not bucket.is_full(trio.current_time())
    await trio.sleep(0.1)
    assert bucket.is_full(trio.current_time())


# ----- typing expiry ---------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    settings = Settings(db_path=tmp_path / "chat.db", typing_timeout=TYPING_TIMEOUT)
    async with running_hub(settings) as hub:
        yield hub


async def typing_heard_by(hub: Hub, conn_id: str, user: User) -> list[tuple[float, bool]]:
    """Count ``user`` online; return the (time, active) of every typing frame
    their connection is given, as it is given."""
    heard: list[tuple[float, bool]] = []

    def deliver(event: Event) -> None:
        if event.is_for(conn_id, user.id):
            frame = json.loads(event.line)
            if frame["type"] == "typing":
                heard.append((trio.current_time(), frame["active"]))

    hub.broker.subscribe(deliver)
    await hub.backends.presence.connect(conn_id, user)
    return heard


async def test_a_typing_indicator_is_cleared_after_the_timeout(
    hub: Hub, autojump_clock: MockClock
) -> None:
    alice, bob = User("u-alice", "alice"), User("u-bob", "bob")
    await typing_heard_by(hub, "w.1", alice)
    bob_heard = await typing_heard_by(hub, "w.2", bob)
    start = trio.current_time()

    await hub.typing("w.1", alice.id, Typing(True, None), ())
    await trio.sleep(3 * TYPING_TIMEOUT)

    assert bob_heard == [(start, True), (start + TYPING_TIMEOUT, False)]


async def test_a_new_typing_frame_pushes_the_timeout_back(
    hub: Hub, autojump_clock: MockClock
) -> None:
    alice, bob = User("u-alice", "alice"), User("u-bob", "bob")
    await typing_heard_by(hub, "w.1", alice)
    bob_heard = await typing_heard_by(hub, "w.2", bob)
    start = trio.current_time()

    await hub.typing("w.1", alice.id, Typing(True, None), ())
    await trio.sleep(TYPING_TIMEOUT - 1)
    # Still typing: refreshed, and relayed again.
    await hub.typing("w.1", alice.id, Typing(True, None), ())
    refreshed = trio.current_time()
    await trio.sleep(3 * TYPING_TIMEOUT)

    assert bob_heard == [(start, True), (refreshed, True), (refreshed + TYPING_TIMEOUT, False)]
