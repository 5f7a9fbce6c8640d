"""A client that goes away at any moment of its session's start leaves
nothing behind: presence never counts a connection nobody will count out."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from fakesession import open_session, running_hub
from quartchat.backends.base import ConnId
from quartchat.backends.local_presence import LocalPresence
from quartchat.config import Settings
from quartchat.models import User


async def test_a_client_gone_while_being_counted_online_is_counted_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
) -> None:
    counted = trio.Event()
    original = LocalPresence.connect

    async def connect(self: LocalPresence, conn: ConnId, user: User) -> tuple[User, bool]:
        # As on Redis: the board has counted the connection, and its answer
        # is still on its way back when the client leaves.
        answer = await original(self, conn, user)
        counted.set()
        await trio.sleep(1)
        return answer

    monkeypatch.setattr(LocalPresence, "connect", connect)
    settings = Settings(db_path=tmp_path / "chat.db", leave_grace=0)
    async with running_hub(settings) as hub:
        async with trio.open_nursery() as connection:
            await open_session(connection, hub, "alice")
            await counted.wait()
            connection.cancel_scope.cancel()  # alice leaves
        await trio.sleep(5)
        assert await hub.backends.presence.online() == []
