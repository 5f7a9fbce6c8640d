"""A store that is away fails every send of every socket; the log says so
once a second per kind, not once per frame (issue 19: logs an attacker can fill)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from fakesession import open_session, running_hub, wait_for
from quartchat.config import Settings
from quartchat.errors import Unavailable


async def test_sends_refused_while_the_store_is_away_log_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        db_path=tmp_path / "chat.db", frame_rate=1000.0, frame_burst=1000, send_burst=1000
    )
    async with running_hub(settings) as hub, trio.open_nursery() as nursery:
        client = await open_session(nursery, hub, "alice")
        await wait_for(lambda: client.of_type("welcome"))

        async def away(*_: object) -> None:
            raise Unavailable("Redis is unreachable (connection refused)")

        monkeypatch.setattr(hub.committer, "post_many", away)
        with caplog.at_level(logging.INFO, "quartchat"):
            for n in range(200):
                await client.client_says(type="send", client_offset=f"o{n}", text="hi", to=None)
            await wait_for(lambda: len(client.of_type("error")) == 200)
        assert {e["code"] for e in client.of_type("error")} == {"unavailable"}
        away_lines = [r for r in caplog.records if "found the store away" in r.getMessage()]
        assert 1 <= len(away_lines) <= 2  # the 200 took well under two seconds
        nursery.cancel_scope.cancel()
