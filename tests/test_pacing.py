"""Flush windows: a busy connection gets what arrives within one window in
one frame, its own replies at once, and a quiet connection waits for nothing.

Driven through the real hub and store with fake transports, whose frames are
recorded one by one. The window here is seconds long, far longer than the
steps of the test take, so frame counts do not depend on the machine's speed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from fakesession import FakeTransport, open_session, running_hub, wait_for
from quartchat.config import Settings
from quartchat.hub import Hub
from quartchat.pacing import PERIOD, FlushPacer

#: The flush window of the hub below (two connections, budget 2/3 frame/s).
WINDOW = 3.0
MESSAGES = 10


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    settings = Settings(
        db_path=tmp_path / "chat.db",
        send_burst=1000,
        flush_budget=2 / WINDOW,
        flush_window_max=WINDOW,
    )
    async with running_hub(settings) as hub:
        yield hub


def message_frames(transport: FakeTransport) -> list[list[int]]:
    """The ids of the chat messages of each frame that held any."""
    frames = [[o["id"] for o in frame if o["type"] == "message"] for frame in transport.frames]
    return [ids for ids in frames if ids]


async def test_a_burst_reaches_a_busy_reader_in_one_frame_and_acks_are_not_held(hub: Hub) -> None:
    async with trio.open_nursery() as nursery:
        alice = await open_session(nursery, hub, "alice")
        bob = await open_session(nursery, hub, "bob")
        await wait_for(lambda: alice.of_type("welcome") and bob.of_type("welcome"))
        assert hub.pacer.window() == WINDOW

        for i in range(MESSAGES):
            await alice.client_says(type="send", client_offset=f"m{i}", text=f"n{i}", to=None)
            # Each ack comes before the window is over: replies are not paced.
            with trio.fail_after(WINDOW - 0.5):
                while len(alice.of_type("ack")) <= i:  # noqa: ASYNC110
                    await trio.sleep(0.01)

        with trio.fail_after(3 * WINDOW):
            while len(bob.of_type("message")) < MESSAGES:  # noqa: ASYNC110
                await trio.sleep(0.05)
        frames = message_frames(bob)
        ids = [i for frame in frames for i in frame]
        assert ids == [ack["id"] for ack in alice.of_type("ack")]
        # The first message found bob's connection quiet and went at once; the
        # rest arrived within its next window and went out together (without
        # pacing, each would be a frame of its own: ten frames).
        assert len(frames[0]) == 1
        assert len(frames) <= 3
        nursery.cancel_scope.cancel()


def test_the_window_spreads_the_budget_over_the_connections_up_to_its_cap() -> None:
    pacer = FlushPacer(budget=10_000, window_max=0.15)
    assert pacer.window() == 0
    with pacer.pacing():
        assert pacer.window() == 1 / 10_000
    counted = [pacer.pacing() for _ in range(1000)]
    for writer in counted:
        writer.__enter__()
    assert pacer.window() == 0.1
    for writer in counted[:500]:
        writer.__exit__(None, None, None)
    assert pacer.window() == 0.05
    more = [pacer.pacing() for _ in range(5000)]
    for writer in more:
        writer.__enter__()
    assert pacer.window() == 0.15


def test_the_budget_is_shared_with_the_connections_of_other_workers() -> None:
    """1,000 receivers split over two workers get the window of one worker
    with 1,000: each worker sends half the frames, not all of them."""
    elsewhere = 500
    pacer = FlushPacer(budget=10_000, window_max=0.15, elsewhere=lambda: elsewhere)
    writers = [pacer.pacing() for _ in range(500)]
    for writer in writers:
        writer.__enter__()
    assert pacer.window() == 0.1
    elsewhere = 0
    assert pacer.window() == 0.05


def test_a_worker_is_busy_once_it_queues_more_than_its_share_of_the_budget() -> None:
    """Pacing starts only when unpaced sends would exceed the budget."""
    elsewhere = 0
    pacer = FlushPacer(budget=1000, window_max=0.15, elsewhere=lambda: elsewhere)
    with pacer.pacing():
        assert not pacer.busy(now=10.0)  # a period starts
        full = int(1000 * PERIOD)  # 1000/s over one period: exactly the budget
        pacer.queued = full
        assert not pacer.busy(now=10 + 0.5 * PERIOD)
        pacer.queued += 1
        assert pacer.busy(now=10 + 0.9 * PERIOD)
        assert pacer.busy(now=10 + 1.5 * PERIOD)  # the period before counts too
        assert not pacer.busy(now=10 + 2.6 * PERIOD)
        elsewhere = 1  # the budget is shared with another worker's connection
        pacer.queued = full // 2 + 1
        assert pacer.busy(now=10 + 3 * PERIOD)
