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
from typing import Any

import pytest
import trio

from conftest import StartServer
from quartchat import admin_cli
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


def said(called: subprocess.CompletedProcess[str]) -> str:
    """All a run of the command said, for a failed assertion's message: a
    status alone cannot tell a refusal from a crash or an unreachable Redis."""
    return (
        f"{' '.join(called.args[len(COMMAND) :])!r}: status {called.returncode}\n"
        f"stdout: {called.stdout!r}\nstderr: {called.stderr!r}"
    )


async def succeeded(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """:func:`admin_async`, which must exit with status 0."""
    called = await admin_async(*arguments, env=env)
    assert called.returncode == 0, said(called)
    return called


async def audit_records(*arguments: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """``audit --json ARGUMENTS``: the records it printed."""
    called = await succeeded("audit", *arguments, "--json", env=env)
    records: list[dict[str, Any]] = json.loads(called.stdout)
    return records


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
    granted = await succeeded("grant", chat.alice, env=chat.env)
    assert granted.stdout == f"{chat.alice} (alice) is now an admin\n", said(granted)

    listed = await succeeded("list", env=chat.env)
    assert listed.stdout == f"{chat.alice}  alice\n", said(listed)

    revoked = await succeeded("revoke", chat.alice, env=chat.env)
    assert revoked.stdout == f"{chat.alice} (alice) is no longer an admin\n", said(revoked)
    listed = await succeeded("list", env=chat.env)
    assert listed.stdout == "", said(listed)

    table = await succeeded("audit", env=chat.env)
    assert len(table.stdout.splitlines()) == 3, said(table)
    header, newest, oldest = table.stdout.splitlines()
    assert header.split() == ["id", "when", "actor", "action", "user", "room", "detail"]
    assert newest.split()[2:6] == ["cli", "revoke_admin", chat.alice, "-"]
    assert oldest.split()[2:6] == ["cli", "grant_admin", chat.alice, "-"]
    assert int(newest.split()[0]) > int(oldest.split()[0])
    assert newest.split()[1].endswith("Z")  # UTC, ISO 8601

    records = await audit_records(env=chat.env)
    assert [(r["actor"], r["action"], r["user"], r["room"]) for r in records] == [
        ("cli", "revoke_admin", chat.alice, None),
        ("cli", "grant_admin", chat.alice, None),
    ]
    assert json.loads(records[1]["detail"]) == {"nick": "alice"}


async def test_granting_twice_or_revoking_a_non_admin_records_nothing(chat: Chat) -> None:
    await succeeded("grant", chat.bob, env=chat.env)
    again = await succeeded("grant", chat.bob, env=chat.env)
    assert again.stdout == f"{chat.bob} (bob) is an admin already\n", said(again)
    not_admin = await succeeded("revoke", chat.alice, env=chat.env)
    assert "is not an admin" in not_admin.stdout, said(not_admin)

    records = await audit_records(env=chat.env)
    assert [r["action"] for r in records] == ["grant_admin"], records


async def test_an_unknown_user_id_is_refused_with_status_1(chat: Chat) -> None:
    for command in ("grant", "revoke"):
        refused = await admin_async(command, "u0000000000000000", env=chat.env)
        assert (refused.returncode, refused.stdout) == (1, ""), said(refused)
        assert "no user with id 'u0000000000000000'" in refused.stderr, said(refused)
        assert len(refused.stderr.splitlines()) == 1, said(refused)

    listed = await succeeded("list", env=chat.env)
    assert listed.stdout == "", said(listed)
    assert await audit_records(env=chat.env) == []


async def test_the_audit_in_pages(chat: Chat) -> None:
    for user in (chat.alice, chat.bob):
        await succeeded("grant", user, env=chat.env)
        await succeeded("revoke", user, env=chat.env)

    first = await succeeded("audit", "--limit", "3", "--json", env=chat.env)
    page = json.loads(first.stdout)
    assert [(r["action"], r["user"]) for r in page] == [
        ("revoke_admin", chat.bob),
        ("grant_admin", chat.bob),
        ("revoke_admin", chat.alice),
    ], said(first)
    # how to ask for the next page
    assert f"--before {page[-1]['id']}" in first.stderr, said(first)

    rest = await audit_records("--before", str(page[-1]["id"]), env=chat.env)
    assert [(r["action"], r["user"]) for r in rest] == [("grant_admin", chat.alice)], rest


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

    shown = await succeeded("audit", env={"QUARTCHAT_DB": str(tmp_path / "chat.db")})

    assert shown.stdout.splitlines()[1:] == [
        '2   2026-01-01T00:01:00Z  ubob   delete  -     -        {"message":1235}',
        '1   2026-01-01T00:00:00Z  ubob   mute    ueve  rdesign  {"seconds":600}',
    ], said(shown)


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

    await succeeded("grant", carol.id, env=env)

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

    assert refused.returncode == 2, said(refused)
    assert "no chat in Redis" in refused.stderr and "'typo:'" in refused.stderr, said(refused)
    async with redis_client(redis_server.url) as client:
        assert await client.keys("typo:*") == set()
        assert await RedisModeration(client, "typo:").admins() == []


def test_a_missing_redis_extra_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without coredis (the ``redis`` extra) the command says what to install."""
    monkeypatch.setitem(sys.modules, "coredis", None)  # importing it fails
    monkeypatch.delitem(sys.modules, "quartchat.backends.redis_client")  # so it imports it
    monkeypatch.setenv("QUARTCHAT_REDIS_URL", "redis://127.0.0.1:1/0")

    assert admin_cli.main(["list"]) == 2
    said = capsys.readouterr().err
    assert "needs the redis extra (coredis is missing)" in said
    assert "pip install 'quartchat[redis]'" in said


def test_a_missing_module_of_quartchat_is_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module of quartchat's own that cannot be imported is a broken install
    (or a work tree caught mid-edit), not a missing extra: its traceback shows."""
    monkeypatch.setitem(sys.modules, "quartchat.backends.redis_moderation", None)
    monkeypatch.setenv("QUARTCHAT_REDIS_URL", "redis://127.0.0.1:1/0")

    with pytest.raises(ModuleNotFoundError) as missing:
        admin_cli.main(["list"])
    assert missing.value.name == "quartchat.backends.redis_moderation"


def test_a_missing_database_is_refused_with_status_2(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    refused = admin("list", env={"QUARTCHAT_DB": str(missing)})
    assert refused.returncode == 2, said(refused)
    assert refused.stderr == (
        f"quartchat admin: QUARTCHAT_DB={missing}: no such file (set QUARTCHAT_DB to the"
        " chat's database, as the server has it)\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["grant"], "the following arguments are required: USER_ID"),
        (["audit", "--limit", "0"], "'0' is not a whole number above 0"),
        (["promote", "u1"], "invalid choice: 'promote'"),
    ],
)
def test_a_bad_call_is_one_line_and_status_2(
    tmp_path: Path, arguments: list[str], expected: str
) -> None:
    called = admin(*arguments, env={"QUARTCHAT_DB": str(tmp_path / "chat.db")})
    assert called.returncode == 2, said(called)
    assert expected in called.stderr, said(called)
    assert len(called.stderr.splitlines()) == 1, said(called)
