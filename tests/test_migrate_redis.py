"""A chat moved from SQLite to Redis (``quartchat migrate``) keeps its
history, tokens and cursors; what stops a migration is one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from quartchat.backends.base import Replay
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.redis_rooms import RedisRooms
from quartchat.backends.sqlite_rooms import SqliteRooms
from quartchat.errors import RoomRefused
from quartchat.models import GENERAL, Draft, Posted, Role, RoomKind
from quartchat.store import AsyncStore, Store
from redis_server import RedisServer, redis_integer

ROOT = Path(__file__).resolve().parent.parent
#: The old route, kept as a wrapper of the command.
SCRIPT = ROOT / "scripts" / "migrate_sqlite_to_redis.py"
#: ``quartchat migrate``, as an installed quartchat runs it.
COMMAND = [sys.executable, "-m", "quartchat", "migrate"]


def run(
    arguments: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("QUARTCHAT_DB", "QUARTCHAT_REDIS_URL", "QUARTCHAT_REDIS_PREFIX")
    }
    return subprocess.run(
        arguments,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**environ, **(env or {})},
    )


def migrate(db: Path, url: str) -> subprocess.CompletedProcess[str]:
    return run([*COMMAND, "--db", str(db), "--to", url, "--prefix", "moved:"])


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
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"quartchat migrate: stopped: Redis already holds a different chat (epoch {log.epoch})"
    ]


def closed_port() -> int:
    """A loopback port nothing listens on (taken, then given back)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_redis_is_one_line_and_status_2(tmp_path: Path) -> None:
    store, _ = seed(tmp_path / "chat.db")
    url = f"redis://127.0.0.1:{closed_port()}/0"

    failed = migrate(store.path, url)

    assert failed.returncode == 2
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith(f"quartchat migrate: --to {url}: Redis is unreachable (")


@pytest.mark.parametrize(
    ("arguments", "cause"),
    [
        (["--to", "redis://127.0.0.1:1/0", "--db", "missing.db"], "--db missing.db: no such file"),
        (["--to", "http://127.0.0.1:1/"], "--to http://127.0.0.1:1/: must look like redis://"),
        ([], "the following arguments are required: --to/--url"),
        (["--to", "redis://h/0", "--from", "x"], "unrecognized arguments: --from x"),
    ],
)
def test_a_bad_call_is_one_line_and_status_2(
    tmp_path: Path, arguments: list[str], cause: str
) -> None:
    failed = run([*COMMAND, *arguments], cwd=tmp_path)

    assert failed.returncode == 2
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith("quartchat migrate: ")
    assert cause in lines[0]


def test_help_explains_every_option() -> None:
    shown = run([*COMMAND, "--help"])

    assert shown.returncode == 0
    assert "Copy a chat from its SQLite file into Redis" in shown.stdout
    for option in ("--to URL, --url URL", "--db PATH", "--prefix PREFIX"):
        assert option in shown.stdout
    for default in (
        "$QUARTCHAT_REDIS_URL",
        "$QUARTCHAT_DB, else chat.db",
        "$QUARTCHAT_REDIS_PREFIX",
    ):
        assert default in " ".join(shown.stdout.split())


def test_the_settings_the_server_reads_are_the_defaults(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Run where the server runs, with its settings: no option is needed."""
    store, _ = seed(tmp_path / "elsewhere.db")
    env = {
        "QUARTCHAT_DB": str(store.path),
        "QUARTCHAT_REDIS_URL": redis_server.url,
        "QUARTCHAT_REDIS_PREFIX": "moved:",
    }

    done = run(COMMAND, cwd=tmp_path, env=env)

    assert done.returncode == 0, done.stderr
    assert "34 messages added" in done.stdout
    assert redis_integer(redis_server.port, "XLEN", "moved:log") == 34


def test_the_old_script_still_migrates(tmp_path: Path, redis_server: RedisServer) -> None:
    store, _ = seed(tmp_path / "chat.db")
    url = redis_server.url

    done = run([sys.executable, str(SCRIPT), "--db", str(store.path), "--url", url])

    assert done.returncode == 0, done.stderr
    assert "3 users added (0 already there), 34 messages added" in done.stdout


async def test_rooms_members_roles_and_read_markers_move_to_redis_once(
    tmp_path: Path, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    store, tokens = seed(tmp_path / "chat.db")
    alice, bob, carol = (store.user_by_token(tokens[nick]) for nick in ("alice", "bob", "carol"))
    assert alice is not None and bob is not None and carol is not None
    embedded = SqliteRooms(await AsyncStore.open(store.path))
    design = await embedded.create(alice.id, "design", RoomKind.PUBLIC, "how it looks")
    secret = await embedded.create(bob.id, "secret", RoomKind.PRIVATE)
    await embedded.add_member(design.id, carol.id)
    await embedded.set_role(design.id, carol.id, Role.MODERATOR)
    await embedded.add_member(secret.id, alice.id)
    await embedded.set_role(GENERAL, bob.id, Role.MODERATOR)
    await embedded.mark_read(alice.id, design.id, 3)
    await embedded.mark_read(alice.id, GENERAL, 30)
    await embedded.mark_read(bob.id, secret.id, 2)
    await embedded.mark_direct_read(bob.id, alice.id, 4)
    await embedded.store.aclose()

    first = await trio.to_thread.run_sync(migrate, store.path, redis_server.url)
    assert first.returncode == 0, first.stderr
    assert "2 rooms added (0 already there), 5 memberships and 4 read markers set" in first.stdout
    again = await trio.to_thread.run_sync(migrate, store.path, redis_server.url)
    assert again.returncode == 0, again.stderr
    assert "0 users added (3 already there), 0 messages added" in again.stdout
    assert "0 rooms added (2 already there)" in again.stdout

    store_again = await AsyncStore.open(store.path)
    embedded = SqliteRooms(store_again)
    async with redis_client(redis_server.url) as client:
        moved = RedisRooms(client, "moved:")
        await nursery.start(moved.run)
        for user in (alice, bob, carol):
            assert await moved.rooms_of(user.id) == await embedded.rooms_of(user.id)
            assert await moved.listing(user.id) == await embedded.listing(user.id)
            assert await moved.direct_reads(user.id) == await embedded.direct_reads(user.id)
        for room_id in (GENERAL, design.id, secret.id):
            assert await moved.members(room_id) == await embedded.members(room_id)
        with pytest.raises(RoomRefused):
            await moved.create(carol.id, "DESIGN", RoomKind.PUBLIC)  # the names came too
        later = await moved.create(carol.id, "later", RoomKind.PUBLIC)
        assert [r.room for r in await moved.listing(carol.id)][-1] == later
        await moved.aclose()
    await store_again.aclose()


async def test_a_deployment_account_is_the_same_user_after_the_move(
    tmp_path: Path, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    """A user who logged in by JWT on SQLite (a subject) is that same user
    on Redis: their next login there must not make a new one."""
    store = Store(tmp_path / "chat.db")
    account = store.user_for_subject("acct-42", "dana")
    store.close()
    moved = await trio.to_thread.run_sync(migrate, tmp_path / "chat.db", redis_server.url)
    assert moved.returncode == 0, moved.stderr
    log = RedisLog(redis_server.url, prefix="moved:")
    await nursery.start(log.run)
    assert await log.user_for_subject("acct-42", "someone else") == account
    await log.aclose()
