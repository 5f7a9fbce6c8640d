"""A chat moved from SQLite to Redis keeps its history, tokens and cursors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from quartchat.backends.base import Replay
from quartchat.backends.redis_log import RedisLog
from quartchat.models import Draft, Posted
from quartchat.store import Store
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "migrate_sqlite_to_redis.py"


def migrate(db: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--db", str(db), "--url", url, "--prefix", "moved:"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def seed(path: Path) -> tuple[Store, dict[str, str]]:
    """A small store: public and private messages, a retried send, a renamed user."""
    store = Store(path)
    tokens = {}
    users = {}
    for nick in ("alice", "bob", "carol"):
        users[nick], tokens[nick] = store.create_user(nick)
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    drafts = [
        Draft(alice, "a1", "hello all", None),
        Draft(bob, "b1", "hi alice, privately", alice),
        Draft(alice, "a1", "hello all (retried)", None),
        Draft(carol, "c1", "carol here", None),
        Draft(alice, "a2", "for carol only", carol),
    ]
    drafts += [Draft(bob, f"b-{i}", f"chatter {i}", None) for i in range(30)]
    store.insert(drafts)
    store.set_nick(carol.id, "caroline")
    return store, tokens


async def test_migrating_twice_copies_once_and_redis_answers_as_sqlite_did(
    tmp_path: Path, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    store, tokens = seed(tmp_path / "chat.db")
    first = await trio.to_thread.run_sync(migrate, store.path, redis_server.url)
    assert first.returncode == 0, first.stderr
    assert "34 messages added" in first.stdout
    assert "messages: up to id 34" in first.stderr  # progress
    again = await trio.to_thread.run_sync(migrate, store.path, redis_server.url)
    assert again.returncode == 0, again.stderr
    assert "0 users added (3 already there), 0 messages added" in again.stdout

    log = RedisLog(redis_server.url, prefix="moved:")
    await nursery.start(log.run)
    assert log.epoch == store.epoch
    assert await log.last_id() == store.last_id() == 34
    for nick, token in tokens.items():
        user = await log.user_by_token(token)
        assert user is not None and user == store.user_by_token(token), nick
        viewer = user.id
        for after in (None, 0, 3, 30):
            assert await log.read_after(viewer, after, 10) == _replay(store, viewer, after, 10)
        for before in (None, 34, 5):
            expected = store.history(viewer, before, 4)
            assert await log.history(viewer, before, 4, None) == expected
        for other in tokens.values():
            other_id = store.user_by_token(other)
            assert other_id is not None
            assert await log.history(viewer, None, 10, other_id.id) == store.history(
                viewer, None, 10, other_id.id
            )

    # The migrated log goes on where SQLite stopped, and still knows old offsets.
    alice = await log.user_by_token(tokens["alice"])
    assert alice is not None
    retried, new = await log.append(
        [Draft(alice, "a2", "for carol only", None), Draft(alice, "a3", "first on Redis", None)]
    )
    assert isinstance(retried, Posted) and retried.duplicate and retried.message.id == 4
    assert isinstance(new, Posted) and new.message.id == 35
    await log.aclose()


def _replay(store: Store, viewer: str, after: int | None, limit: int) -> Replay:
    return Replay(*store.replay(viewer, after, limit))


async def test_a_redis_holding_another_chat_is_refused(
    tmp_path: Path, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    store, _ = seed(tmp_path / "chat.db")
    log = RedisLog(redis_server.url, prefix="moved:")
    await nursery.start(log.run)
    user, _ = await log.create_user("someone")
    await log.append([Draft(user, "x", "already chatting on Redis", None)])
    await log.aclose()
    refused = await trio.to_thread.run_sync(migrate, store.path, redis_server.url)
    assert refused.returncode != 0
    assert "different chat" in refused.stderr
