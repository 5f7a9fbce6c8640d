"""``quartchat admin``, run as the real command (a subprocess with the
server's settings in its environment) on both backends: grants and revokes
of the admin role, the list of admins, the audit; an unknown user id is
refused; and it works beside a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from conftest import StartServer
from quartchat.backends.moderation import AuditEntry
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.redis_moderation import RedisModeration
from quartchat.backends.sqlite_moderation import SqliteModeration
from quartchat.store import AsyncStore, Store
from redis_server import RedisServer

COMMAND = [sys.executable, "-m", "quartchat", "admin"]
PREFIX = "adm:"


def admin(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``quartchat admin ARGUMENTS`` with only ``env``'s quartchat settings."""
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("QUARTCHAT_")
    }
    return subprocess.run(
        [*COMMAND, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **env},
    )


async def admin_async(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """:func:`admin` off the event loop (a server of this test may be serving on it)."""
    return await trio.to_thread.run_sync(lambda: admin(*arguments, env=env))


@dataclass
class Chat:
    """A chat's state with two users, no server running, and the settings naming it."""

    env: dict[str, str]
    alice: str
    bob: str


@pytest.fixture(params=["sqlite", "redis"])
async def chat(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Chat]:
    if request.param == "sqlite":
        store = Store(tmp_path / "chat.db")
        (alice, _), (bob, _) = store.create_users(["alice", "bob"])
        store.close()
        yield Chat({"QUARTCHAT_DB": str(store.path)}, alice.id, bob.id)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    log = RedisLog(server.url, prefix=PREFIX)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)  # makes the chat's epoch, as a server's start does
        alice, _ = await log.create_user("alice")
        bob, _ = await log.create_user("bob")
        await log.aclose()
    env = {"QUARTCHAT_REDIS_URL": server.url, "QUARTCHAT_REDIS_PREFIX": PREFIX}
    # Where the command must not look: a file the embedded default would use.
    env["QUARTCHAT_DB"] = str(tmp_path / "absent.db")
    yield Chat(env, alice.id, bob.id)


async def test_grant_list_revoke_and_the_audit_says_both(chat: Chat) -> None:
    granted = await admin_async("grant", chat.alice, env=chat.env)
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout == f"{chat.alice} (alice) is now an admin\n"

    listed = await admin_async("list", env=chat.env)
    assert (listed.returncode, listed.stdout) == (0, f"{chat.alice}  alice\n"), listed.stderr

    revoked = await admin_async("revoke", chat.alice, env=chat.env)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == f"{chat.alice} (alice) is no longer an admin\n"
    assert (await admin_async("list", env=chat.env)).stdout == ""

    table = await admin_async("audit", env=chat.env)
    assert table.returncode == 0, table.stderr
    header, newest, oldest = table.stdout.splitlines()
    assert header.split() == ["id", "when", "actor", "action", "user", "room", "detail"]
    assert newest.split()[2:6] == ["cli", "revoke_admin", chat.alice, "-"]
    assert oldest.split()[2:6] == ["cli", "grant_admin", chat.alice, "-"]
    assert int(newest.split()[0]) > int(oldest.split()[0])
    assert newest.split()[1].endswith("Z")  # UTC, ISO 8601

    as_json = await admin_async("audit", "--json", env=chat.env)
    records = json.loads(as_json.stdout)
    assert [(r["actor"], r["action"], r["user"], r["room"]) for r in records] == [
        ("cli", "revoke_admin", chat.alice, None),
        ("cli", "grant_admin", chat.alice, None),
    ]
    assert json.loads(records[1]["detail"]) == {"nick": "alice"}


async def test_granting_twice_or_revoking_a_non_admin_records_nothing(chat: Chat) -> None:
    assert (await admin_async("grant", chat.bob, env=chat.env)).returncode == 0
    again = await admin_async("grant", chat.bob, env=chat.env)
    assert (again.returncode, again.stdout) == (0, f"{chat.bob} (bob) is an admin already\n")
    not_admin = await admin_async("revoke", chat.alice, env=chat.env)
    assert not_admin.returncode == 0
    assert "is not an admin" in not_admin.stdout

    records = json.loads((await admin_async("audit", "--json", env=chat.env)).stdout)
    assert [r["action"] for r in records] == ["grant_admin"]


async def test_an_unknown_user_id_is_refused_with_status_1(chat: Chat) -> None:
    for command in ("grant", "revoke"):
        refused = await admin_async(command, "u0000000000000000", env=chat.env)
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert "no user with id 'u0000000000000000'" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1

    assert (await admin_async("list", env=chat.env)).stdout == ""
    assert json.loads((await admin_async("audit", "--json", env=chat.env)).stdout) == []


async def test_the_audit_in_pages(chat: Chat) -> None:
    for user in (chat.alice, chat.bob):
        assert (await admin_async("grant", user, env=chat.env)).returncode == 0
        assert (await admin_async("revoke", user, env=chat.env)).returncode == 0

    first = await admin_async("audit", "--limit", "3", "--json", env=chat.env)
    page = json.loads(first.stdout)
    assert [(r["action"], r["user"]) for r in page] == [
        ("revoke_admin", chat.bob),
        ("grant_admin", chat.bob),
        ("revoke_admin", chat.alice),
    ]
    assert f"--before {page[-1]['id']}" in first.stderr  # how to ask for the next page

    rest = await admin_async("audit", "--before", str(page[-1]["id"]), "--json", env=chat.env)
    assert [(r["action"], r["user"]) for r in json.loads(rest.stdout)] == [
        ("grant_admin", chat.alice)
    ]


async def test_the_audit_shows_what_the_server_recorded(tmp_path: Path) -> None:
    """Records of moderation in the chat (not only the command's own) are read back."""
    store = await AsyncStore.open(tmp_path / "chat.db")
    board = await SqliteModeration.open(store)
    await board.record(
        AuditEntry("ubob", "mute", "ueve", "rdesign", '{"seconds":600}', 1_767_225_600_000)
    )
    await board.record(
        AuditEntry("ubob", "delete", None, None, '{"message":1235}', 1_767_225_660_000)
    )
    await board.aclose()
    await store.aclose()

    shown = await admin_async("audit", env={"QUARTCHAT_DB": str(tmp_path / "chat.db")})

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1:] == [
        '2   2026-01-01T00:01:00Z  ubob   delete  -     -        {"message":1235}',
        '1   2026-01-01T00:00:00Z  ubob   mute    ueve  rdesign  {"seconds":600}',
    ]


async def test_it_works_beside_a_running_server(start_server: StartServer) -> None:
    """The server holds the SQLite file (its single-writer lock too), or is two
    workers on Redis; the command grants, and the server's own board reads it."""
    server = await start_server()
    hub = server.hub
    carol, _ = await hub.backends.identities.create_user("carol")
    settings = server.settings
    env = {"QUARTCHAT_DB": str(settings.db_path)}
    if settings.redis_url is not None:
        env |= {"QUARTCHAT_REDIS_URL": settings.redis_url}
        env |= {"QUARTCHAT_REDIS_PREFIX": settings.redis_prefix}

    granted = await admin_async("grant", carol.id, env=env)

    assert granted.returncode == 0, granted.stderr
    for worker in server.workers:
        assert await worker.hub.backends.moderation.admins() == [carol.id]
    (record,) = await hub.backends.moderation.audit(None, 10)
    assert (record.entry.actor, record.entry.action) == ("cli", "grant_admin")


async def test_a_redis_without_that_chat_is_refused_with_status_2(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A wrong prefix (or URL) names no chat: said so, and nothing is made there."""
    env = {"QUARTCHAT_REDIS_URL": redis_server.url, "QUARTCHAT_REDIS_PREFIX": "typo:"}

    refused = await admin_async("list", env=env)

    assert refused.returncode == 2
    assert "no chat in Redis" in refused.stderr and "'typo:'" in refused.stderr
    async with redis_client(redis_server.url) as client:
        assert await client.keys("typo:*") == set()
        assert await RedisModeration(client, "typo:").admins() == []


def test_a_missing_database_is_refused_with_status_2(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    refused = admin("list", env={"QUARTCHAT_DB": str(missing)})
    assert refused.returncode == 2
    assert refused.stderr == (
        f"quartchat admin: QUARTCHAT_DB={missing}: no such file (set QUARTCHAT_DB to the"
        " chat's database, as the server has it)\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["grant"], "the following arguments are required: USER_ID"),
        (["audit", "--limit", "0"], "'0' is not a whole number above 0"),
        (["promote", "u1"], "invalid choice: 'promote'"),
    ],
)
def test_a_bad_call_is_one_line_and_status_2(
    tmp_path: Path, arguments: list[str], said: str
) -> None:
    called = admin(*arguments, env={"QUARTCHAT_DB": str(tmp_path / "chat.db")})
    assert called.returncode == 2
    assert said in called.stderr
    assert len(called.stderr.splitlines()) == 1
