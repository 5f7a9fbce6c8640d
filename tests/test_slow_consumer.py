"""One slow client is cut with 4008 and never slows the others.

Driven through the real hub and store with fake transports (the
``Transport`` interface a session speaks through), so "slow" is exact: the
slow client's socket never accepts a byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from fakesession import FakeTransport, open_session, running_hub, wait_for
from quartchat.config import Settings
from quartchat.errors import TOO_SLOW
from quartchat.hub import Hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    # Leaves at once: with the default 5 s grace, the cut client's leave
    # would race the 5 s a test waits for it.
    settings = Settings(
        db_path=tmp_path / "chat.db", queue_size=8, send_burst=1000, leave_grace=0.0
    )
    async with running_hub(settings) as hub:
        yield hub


CLOSED = "quartchat_connections_closed_total"


async def test_a_stalled_client_is_cut_and_the_rest_keep_receiving(hub: Hub) -> None:
    async with trio.open_nursery() as nursery:
        fast = await open_session(nursery, hub, "fast")
        slow = await open_session(nursery, hub, "slow", stalled=True)
        sender = await open_session(nursery, hub, "sender")
        await wait_for(lambda: fast.of_type("welcome") and sender.of_type("welcome"))

        for i in range(40):
            await sender.client_says(type="send", client_offset=f"m{i}", text=f"n{i}", to=None)
        await wait_for(lambda: len(sender.of_type("ack")) == 40)
        await wait_for(lambda: len(fast.of_type("message")) == 40)

        with trio.fail_after(5):
            await slow.closed.wait()
        assert slow.close_code == TOO_SLOW
        # The cut client's user left; the others saw it go.
        await wait_for(lambda: any(f.get("event") == "leave" for f in fast.of_type("presence")))
        ids = [frame["id"] for frame in fast.of_type("message")]
        assert ids == sorted(set(ids))
        nursery.cancel_scope.cancel()


def knows(viewer: FakeTransport, other: FakeTransport) -> bool:
    """Whether ``viewer`` was told ``other`` is online: in its welcome, or by
    a join (users who connect together learn of each other by the welcome)."""
    if not (other.of_type("welcome") and viewer.of_type("welcome")):
        return False
    other_id = other.of_type("welcome")[0]["user"]["id"]
    online = {user["id"] for user in viewer.of_type("welcome")[0]["online"]}
    joined = {f["user"]["id"] for f in viewer.of_type("presence") if f["event"] == "join"}
    return other_id in online | joined


async def test_a_stalled_client_holds_its_place_until_its_queue_overflows(hub: Hub) -> None:
    """While one client's socket takes nothing, the sender is acked and the
    others get every message in lockstep; the stalled client stays connected
    exactly as long as its queue has room, is cut with 4008 by the message
    that overflows it, and on reconnecting gets every message it missed."""
    room = hub.settings.queue_size
    async with trio.open_nursery() as nursery:
        fast = await open_session(nursery, hub, "fast")
        slow = await open_session(nursery, hub, "slow")
        sender = await open_session(nursery, hub, "sender")
        await wait_for(lambda: knows(slow, sender))
        slow.stalled = True

        async def say(i: int) -> None:
            await sender.client_says(type="send", client_offset=f"m{i}", text=f"n{i}", to=None)
            await wait_for(lambda: len(sender.of_type("ack")) == i + 1)
            await wait_for(lambda: len(fast.of_type("message")) == i + 1)

        await say(0)
        with trio.fail_after(5):
            await slow.stuck.wait()  # its writer holds message 0 in a send that never returns
        for i in range(1, room + 1):  # ...and its queue takes one message each
            await say(i)
            assert not slow.closed.is_set(), f"cut at message {i} with room for {room}"
        await say(room + 1)
        with trio.fail_after(5):
            await slow.closed.wait()
        assert slow.close_code == TOO_SLOW
        cuts = {"code": str(TOO_SLOW)}
        assert hub.metrics.registry.get_sample_value(CLOSED, cuts) == 1

        sent_ids = [ack["id"] for ack in sender.of_type("ack")]
        assert [frame["id"] for frame in fast.of_type("message")] == sent_ids
        welcome = slow.of_type("welcome")[0]
        back = await open_session(
            nursery, hub, "slow", token=welcome["token"], last_id=welcome["last_id"]
        )
        await wait_for(lambda: back.of_type("welcome"))
        await back.client_says(type="ping")
        await wait_for(lambda: back.of_type("pong"))
        assert [frame["id"] for frame in back.of_type("message")] == sent_ids
        nursery.cancel_scope.cancel()
