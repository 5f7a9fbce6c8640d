"""Group commit: one bad draft never fails the other senders of its batch."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import trio
import trio.testing

from quartchat.backends.sqlite_log import SqliteLog
from quartchat.committer import Committer
from quartchat.errors import StoreError
from quartchat.metrics import Metrics
from quartchat.models import Draft, Posted, User


async def test_a_draft_the_store_refuses_fails_alone(tmp_path: Path) -> None:
    log = await SqliteLog.open(tmp_path / "chat.db")
    senders = [(await log.create_user(f"user{i}"))[0] for i in range(30)]
    mallory, _ = await log.create_user("mallory")
    committer = Committer(log, Metrics(users_online=lambda: 0))
    acked: dict[str, Posted] = {}

    async def send(user: User, offset: str, text: str) -> None:
        (outcome,) = await committer.post_many([(Draft(user, offset, text, None), None)])
        assert isinstance(outcome, Posted)
        acked[offset] = outcome

    async def send_bad() -> None:
        # Built here, below the protocol, which refuses such text on its own.
        (outcome,) = await committer.post_many([(Draft(mallory, "bad", "x\ud800", None), None)])
        assert isinstance(outcome, StoreError)

    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as senders_nursery:
            for i, user in enumerate(senders[:15]):
                senders_nursery.start_soon(send, user, f"o{i}", f"hello {i}")
            senders_nursery.start_soon(send_bad)
            for i, user in enumerate(senders[15:], start=15):
                senders_nursery.start_soon(send, user, f"o{i}", f"hello {i}")
            await trio.testing.wait_all_tasks_blocked()  # all 31 queued: one batch
            await outer.start(committer.run)
        outer.cancel_scope.cancel()

    assert sorted(acked) == sorted(f"o{i}" for i in range(30))
    assert sorted(p.message.id for p in acked.values()) == list(range(1, 31))
    async with aclosing(log.tail(0)) as tail:
        published = await anext(tail)
    assert [c.message.id for c in published] == list(range(1, 31))
    stored, _ = await log.history(senders[0].id, None, 100, None)
    assert sorted(m.text for m in stored) == sorted(f"hello {i}" for i in range(30))
    await log.aclose()
