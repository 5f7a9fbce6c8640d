"""Copy a quartchat SQLite store into Redis, so a chat that outgrows one
process keeps its history, its users' tokens and its clients' cursors.

Usage, with the servers stopped (or at least no longer writing to SQLite)::

    .venv/bin/python scripts/migrate_sqlite_to_redis.py --db chat.db \\
        --url redis://127.0.0.1:6379/0 [--prefix quartchat:]

``--db``, ``--url`` and ``--prefix`` default to ``QUARTCHAT_DB``,
``QUARTCHAT_REDIS_URL`` and ``QUARTCHAT_REDIS_PREFIX``. What is copied: the
epoch (so cursors stay valid), every user with their token hash, and every
message with its id, time and ``client_offset`` (so a retried send is still
recognised). It is idempotent: users Redis knows and messages at or below
Redis's last id are skipped, so running it again adds nothing, and an
interrupted run resumes. It refuses a Redis that already holds a different
chat. Progress goes to stderr; a summary line to stdout.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

import trio

from quartchat.backends.redis_log import RedisLog
from quartchat.errors import StoreError
from quartchat.models import Message, User
from quartchat.store import SCHEMA_VERSION

BATCH = 1000


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise SystemExit(f"no SQLite store at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise SystemExit(
            f"{path} has schema {version}, this quartchat {SCHEMA_VERSION}: "
            "start this quartchat on it once (it upgrades the file), then migrate"
        )
    return db


def message_batch(db: sqlite3.Connection, after_id: int) -> list[tuple[Message, str]]:
    rows = db.execute(
        "SELECT id, sender, nick, recipient, recipient_nick, text, ts, client_offset"
        " FROM messages WHERE id > ? ORDER BY id LIMIT ?",
        [after_id, BATCH],
    ).fetchall()
    return [
        (
            Message(
                msg_id, User(sender, nick), None if to is None else User(to, to_nick), text, ts
            ),
            offset,
        )
        for msg_id, sender, nick, to, to_nick, text, ts, offset in rows
    ]


async def migrate(db: sqlite3.Connection, log: RedisLog) -> str:
    epoch = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
    await log.adopt_epoch(epoch)

    users = db.execute("SELECT id, nick, token_hash, created FROM users ORDER BY id").fetchall()
    new_users = 0
    for done, (user_id, nick, token_hash, created) in enumerate(users, 1):
        new_users += await log.import_user(User(user_id, nick), token_hash, created)
        if done % BATCH == 0 or done == len(users):
            print(f"users: {done:,}/{len(users):,}", file=sys.stderr)

    total = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    position = already = await log.last_id()
    added = 0
    while batch := message_batch(db, position):
        added += await log.import_messages(batch)
        position = batch[-1][0].id
        print(f"messages: up to id {position:,} ({added:,} added)", file=sys.stderr)
    return (
        f"epoch {epoch}: {new_users:,} users added ({len(users) - new_users:,} already there),"
        f" {added:,} messages added (of {total:,}; Redis had ids up to {already:,});"
        f" Redis last id {await log.last_id():,}"
    )


async def main(args: argparse.Namespace) -> None:
    db = open_readonly(Path(args.db))
    log = RedisLog(args.url, prefix=args.prefix)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            try:
                print(await migrate(db, log))
            finally:
                await log.aclose()
    except* StoreError as failed:
        raise SystemExit(f"migration stopped: {failed.exceptions[0]}") from None
    finally:
        db.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=os.environ.get("QUARTCHAT_DB", "chat.db"))
    url = os.environ.get("QUARTCHAT_REDIS_URL")
    parser.add_argument("--url", default=url, required=url is None, help="redis://host:port/db")
    parser.add_argument("--prefix", default=os.environ.get("QUARTCHAT_REDIS_PREFIX", "quartchat:"))
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse())
