"""``quartchat admin``: grant and revoke the chat-wide admin role, list the
admins, read the moderation audit.

It reads the server's own settings (``QUARTCHAT_DB``, or
``QUARTCHAT_REDIS_URL`` and ``QUARTCHAT_REDIS_PREFIX``) and works while the
server runs: on SQLite it opens a second connection to the chat's file
(WAL lets it read and write beside the server) and never takes the lock
that keeps a second server off the file; on Redis it is one more client.
A running server sees a grant or a revoke within a second (each worker
reads the admins that often, :mod:`quartchat.sanctions`).

Users are named by id (``u3f2a...``: a user's id is in their welcome, in
the member lists, in the audit), looked up through the chat's
:class:`~quartchat.backends.base.Identities`, so a typo is refused, not
granted. Exit status: 0 done, 1 refused (an unknown user) or failed (the
store said no), 2 a bad call or setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from .backends.base import Identities
from .backends.moderation import AuditAction, AuditEntry, AuditRecord, ModerationBoard
from .config import Settings
from .errors import ConfigError, QuartchatError, exception_leaves
from .store import now_ms
from .usage import OneLineParser, bad_start

PROG = "quartchat admin"
#: Exit status of a command refused (an unknown user) or failed (the store).
REFUSED = 1
#: Records ``audit`` shows when not told how many.
DEFAULT_LIMIT = 50
#: What an empty field of the audit's table shows.
NONE = "-"


class AdminError(QuartchatError):
    """What stops the command, said in one line."""


def main(argv: list[str]) -> int:
    """Run one admin command; the exit status."""
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return bad_start(str(exc), PROG)
    if settings.redis_url is None and not settings.db_path.is_file():  # never made here
        return bad_start(
            f"QUARTCHAT_DB={settings.db_path}: no such file (set QUARTCHAT_DB to the chat's"
            " database, as the server has it)",
            PROG,
        )
    try:
        return trio.run(partial(run, settings, args))
    except AdminError as exc:
        return bad_start(str(exc), PROG)


def parser() -> argparse.ArgumentParser:
    found = OneLineParser(
        prog=PROG,
        description="Grant or revoke the chat-wide admin role, list the admins, read the"
        " moderation audit. Reads the server's settings (QUARTCHAT_DB, or QUARTCHAT_REDIS_URL"
        " and QUARTCHAT_REDIS_PREFIX); the server may be running.",
    )
    commands = found.add_subparsers(dest="command", required=True, metavar="COMMAND")
    grant = commands.add_parser("grant", help="make a user an admin (recorded in the audit)")
    grant.add_argument("user_id", metavar="USER_ID", help="the user's id, e.g. u3f2a9c0d1b4e5f6a")
    revoke = commands.add_parser("revoke", help="take the admin role back (recorded in the audit)")
    revoke.add_argument("user_id", metavar="USER_ID", help="the user's id")
    commands.add_parser(
        "list", help="the users made admins here (not those a JWT's roles name: see the README)"
    )
    audit = commands.add_parser("audit", help="the moderation actions, newest first")
    audit.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"how many records (default {DEFAULT_LIMIT})",
    )
    audit.add_argument(
        "--before",
        type=_positive,
        metavar="ID",
        help="only records older than this id (the next page: the last id shown)",
    )
    audit.add_argument(
        "--json", action="store_true", help="a JSON array of the records instead of a table"
    )
    return found


def _positive(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number above 0")
    return int(raw)


Command = Callable[[argparse.Namespace, Identities, ModerationBoard], Awaitable[int]]


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Open the chat's state, run the command, close it; the exit status."""
    command = COMMANDS[args.command]
    try:
        async with open_chat(settings) as (identities, board):
            return await command(args, identities, board)
    except Exception as failed:
        cause = _failure(failed, redis=settings.redis_url is not None)
        if cause is None:
            raise
        print(f"{PROG}: {cause}", file=sys.stderr)
        return REFUSED


def _failure(failed: BaseException, redis: bool) -> str | None:
    """What stopped the command, found in ``failed`` or the exception
    groups around it (the Redis clients' task groups wrap what they raise)."""
    leaves = exception_leaves(failed)
    for leaf in leaves:
        if isinstance(leaf, AdminError):
            raise leaf  # a setting that names no chat: status 2, as a bad start
        if isinstance(leaf, QuartchatError):
            return str(leaf)
    if redis:
        from .migrate import redis_failure

        return redis_failure(failed)
    return None


# ----- opening the chat -----------------------------------------------------------


@asynccontextmanager
async def open_chat(settings: Settings) -> AsyncIterator[tuple[Identities, ModerationBoard]]:
    """The configured chat's identities and moderation board."""
    if settings.redis_url is None:
        async with _open_sqlite(settings.db_path) as opened:
            yield opened
    else:
        async with _open_redis(settings.redis_url, settings.redis_prefix) as opened:
            yield opened


@asynccontextmanager
async def _open_sqlite(path: Path) -> AsyncIterator[tuple[Identities, ModerationBoard]]:
    """The chat's file, beside a server that may hold it (see the module doc)."""
    from .backends.sqlite_log import SqliteLog
    from .backends.sqlite_moderation import SqliteModeration

    log = await SqliteLog.open(path)
    try:
        board = await SqliteModeration.open(log.store)
        try:
            yield log, board
        finally:
            await board.aclose()
    finally:
        await log.aclose()


@asynccontextmanager
async def _open_redis(url: str, prefix: str) -> AsyncIterator[tuple[Identities, ModerationBoard]]:
    """The chat under ``prefix`` in Redis; one that no server has started
    (no epoch there: a wrong URL or prefix) is refused, not made."""
    try:
        from .backends.redis_client import check_reachable, redis_client
        from .backends.redis_log import LogKeys, RedisLog
        from .backends.redis_moderation import RedisModeration
    except ModuleNotFoundError as exc:  # coredis is an extra
        if (exc.name or "").partition(".")[0] == __package__:
            raise  # a module of quartchat's own: a broken install, not the extra
        raise AdminError(
            f"QUARTCHAT_REDIS_URL needs the redis extra ({exc.name} is missing):"
            " pip install 'quartchat[redis]'"
        ) from exc
    try:
        await check_reachable(url)
    except QuartchatError as exc:
        raise AdminError(f"QUARTCHAT_REDIS_URL={url}: {exc}") from exc
    log = RedisLog(url, prefix=prefix)
    async with redis_client(url) as client, trio.open_nursery() as nursery:
        if not await client.exists([LogKeys(prefix).key("epoch")]):
            raise AdminError(
                f"no chat in Redis at {url} under the prefix {prefix!r}"
                " (QUARTCHAT_REDIS_PREFIX): start the server on it first"
            )
        await nursery.start(log.run)
        board = RedisModeration(client, prefix)
        try:
            yield log, board
        finally:
            await board.aclose()
            await log.aclose()
            nursery.cancel_scope.cancel()


# ----- the commands -------------------------------------------------------------


async def grant(args: argparse.Namespace, identities: Identities, board: ModerationBoard) -> int:
    user = await identities.get_user(args.user_id)
    if user is None:
        return _unknown(args.user_id)
    if not await board.set_admin(user.id, True):
        print(f"{user.id} ({user.nick}) is an admin already")
        return 0
    await board.record(_entry("grant_admin", user.id, user.nick))
    print(f"{user.id} ({user.nick}) is now an admin")
    return 0


async def revoke(args: argparse.Namespace, identities: Identities, board: ModerationBoard) -> int:
    """A user gone since (pruned) can still be revoked, if they are an admin."""
    user = await identities.get_user(args.user_id)
    if user is None and args.user_id not in await board.admins():
        return _unknown(args.user_id)
    named = args.user_id if user is None else f"{user.id} ({user.nick})"
    if not await board.set_admin(args.user_id, False):
        print(f"{named} is not an admin (the role a JWT gives is not this command's)")
        return 0
    await board.record(_entry("revoke_admin", args.user_id, None if user is None else user.nick))
    print(f"{named} is no longer an admin")
    return 0


def _unknown(user_id: str) -> int:
    print(
        f"{PROG}: no user with id {user_id!r} in this chat (a user's id looks like"
        " u3f2a9c0d1b4e5f6a: see the member lists, or the audit)",
        file=sys.stderr,
    )
    return REFUSED


def _entry(action: AuditAction, user_id: str, nick: str | None) -> AuditEntry:
    """What the command did, as the audit keeps it (the nick it had then)."""
    detail = "" if nick is None else json.dumps({"nick": nick}, ensure_ascii=False)
    return AuditEntry("cli", action, user_id, None, detail, now_ms())


async def list_admins(
    args: argparse.Namespace, identities: Identities, board: ModerationBoard
) -> int:
    admins = await board.admins()
    if not admins:
        print(
            "no admins granted (quartchat admin grant USER_ID; a JWT with roles"
            ' ["admin"] makes one for its login, not listed here)',
            file=sys.stderr,
        )
    for user_id in admins:
        user = await identities.get_user(user_id)
        print(f"{user_id}  {'(no such user now)' if user is None else user.nick}")
    return 0


async def audit(args: argparse.Namespace, identities: Identities, board: ModerationBoard) -> int:
    records = await board.audit(args.before, args.limit)
    if args.json:
        print(json.dumps([_as_json(record) for record in records], ensure_ascii=False))
    elif records:
        print(audit_table(records))
    else:
        below = "" if args.before is None else f" before id {args.before}"
        print(f"no audit records{below}", file=sys.stderr)
    if len(records) == args.limit:
        print(f"older: {PROG} audit --before {records[-1].id}", file=sys.stderr)
    return 0


def when(ts: int) -> str:
    """A record's time, in UTC, to the second (ISO 8601)."""
    at = datetime.fromtimestamp(ts / 1000, UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _as_json(record: AuditRecord) -> dict[str, object]:
    entry = record.entry
    return {
        "id": record.id,
        "ts": entry.ts,
        "when": when(entry.ts),
        "actor": entry.actor,
        "action": entry.action,
        "user": entry.user,
        "room": entry.room,
        "detail": entry.detail,
    }


COLUMNS = ("id", "when", "actor", "action", "user", "room", "detail")


def audit_table(records: list[AuditRecord]) -> str:
    """The records as a table with a header, columns padded to their widest."""
    rows = [COLUMNS] + [
        (
            str(r.id),
            when(r.entry.ts),
            r.entry.actor,
            r.entry.action,
            r.entry.user or NONE,
            r.entry.room or NONE,
            r.entry.detail or NONE,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


COMMANDS: dict[str, Command] = {
    "grant": grant,
    "revoke": revoke,
    "list": list_admins,
    "audit": audit,
}
