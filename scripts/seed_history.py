"""Fill a quartchat store with realistic, reproducible chat history.

Usage::

    python scripts/seed_history.py --count N [--db PATH] [--users K] [--seed S]

    --count N   messages to have in the seeded history (required)
    --db PATH   SQLite file (default: $QUARTCHAT_DB, else chat.db); created and
                migrated with quartchat.store if needed
    --users K   seed users who talk (default 20), ids ``seed-user-0000``...
    --seed S    random seed (default 1)

Message ``i`` of a history is fully determined by ``(i, seed, users)``: its
sender, recipient and text come from a random stream seeded with those, and its
``client_offset`` is ``seed-<seed>-<users>-<i>``. So ``UNIQUE(sender,
client_offset)`` turns a rerun with the same arguments into a no-op, and a
larger ``--count`` appends only the missing messages. About 3% are private
messages between two seed users; texts are short chat lines built from the
word lists below (3-200 characters, the odd long one up to 2000).

Timestamps grow with ``i`` so ``messages.id`` (AUTOINCREMENT) stays in time
order: new messages are spread, about one a minute, over the time before now,
but never before the newest message already in the file.

Progress goes to stderr; one summary line goes to stdout.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import sqlite_utils
from sqlite_utils.db import SQLITE_MAX_VARS

from quartchat.models import GENERAL
from quartchat.protocol import MAX_TEXT
from quartchat.store import connect, hash_token, migrate, now_ms

COLUMNS = ("sender", "nick", "recipient", "recipient_nick", "text", "ts", "client_offset", "room")
#: Rows per transaction: big enough that commits are rare, small enough that
#: progress moves and an interrupted run keeps most of its work.
CHUNK_ROWS = 20_000
#: Rows per INSERT statement; sqlite-utils caps it at SQLITE_MAX_VARS // columns.
STATEMENT_ROWS = SQLITE_MAX_VARS // len(COLUMNS)
#: Messages generated from one random stream; a fixed size keeps message i
#: independent of --count and of chunking.
BLOCK = 1000
#: Average time between two new messages.
GAP_MS = 60_000
SHORT_MAX = 200
PRIVATE_SHARE = 0.03
LONG_SHARE = 0.01
PROGRESS_INTERVAL = 0.1

NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
    "yasmin", "zoe", "amir", "bea", "chen", "dmitri", "elena", "farah", "gus", "hana",
    "igor", "jonas", "kiri", "lena", "marco", "nora", "oscar", "priya", "quinn", "rosa",
    "sam", "tariq", "uma", "vera", "wen", "xavi", "yuki", "zane",
)  # fmt: skip
GREETINGS = (
    "hi all", "hey everyone", "morning!", "good morning folks", "evening all",
    "hello hello", "back from lunch", "o/ hi", "gn everyone", "afternoon, how's it going?",
    "hey {nick}", "welcome back {nick}", "hi {nick}, long time no see",
)  # fmt: skip
SUBJECTS = (
    "the build", "my laptop", "the new release", "this chat", "the deploy", "our CI",
    "the coffee machine", "the test suite", "the API", "the staging server", "my cat",
    "the weather", "the standup", "the wifi", "the wiki", "that migration", "the dashboard",
    "the search page", "the new intern", "the database", "my keyboard", "the office",
)  # fmt: skip
STATES = (
    "is broken again", "is really fast now", "looks pretty great", "is a bit flaky today",
    "is way better than before", "is down", "works fine on my machine", "is surprisingly quiet",
    "is stuck at 99%", "needs a restart", "got an update last night", "is taking forever",
    "finally passes", "made my day", "is on fire (not literally)", "seems fine to me",
)  # fmt: skip
QUESTIONS = (
    "anyone know why {subject} {state}?", "is it just me or {subject} {state}?",
    "did anyone look at {subject} yet?", "what's the plan for {subject}?",
    "can someone review my PR?", "lunch?", "who's around this weekend?",
    "how do I reset {subject}?", "does {subject} work for you?", "any news on {subject}?",
    "should we move the meeting to 3pm?", "coffee in 5?", "{nick} are you there?",
)  # fmt: skip
REPLIES = (
    "yeah", "nope", "same here", "lol", "haha true", "+1 from me", "not sure tbh",
    "let me check", "works for me", "brb", "thanks!", "np!", "agreed", "on it",
    "good point", "sounds good", "no idea, sorry", "I'll take a look after lunch",
    "can confirm", "oh nice", "wait what", "makes sense", "ok cool", "done ✅",
)  # fmt: skip
STATEMENTS = (
    "{subject} {state}", "{subject} {state}", "{subject} {state}", "I think {subject} {state}",
    "heads up: {subject} {state}", "fyi {subject} {state}", "ugh, {subject} {state}",
    "just pushed a fix for {subject}", "going to grab a coffee", "pushed, please pull",
    "reminder: retro at 4", "I'll be offline for an hour", "ok {subject} {state} now",
)  # fmt: skip
ESSAY_OPENERS = (
    "ok so, long story:", "quick summary for those who missed it:", "so here's what happened:",
    "notes from today:", "rant incoming.",
)  # fmt: skip
EMOJI = ("🙂", "😂", "👍", "🎉", "🔥", "🤔", "❤️", "🚀", "😅", "👀", "☕", "🙈")


class Line(NamedTuple):
    """One generated message before it has a timestamp: indexes into the users."""

    sender: int
    recipient: int | None
    text: str
    jitter: float


@dataclass(frozen=True, slots=True)
class SeedUser:
    id: str
    nick: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """Where the messages new to the file go: ``start + (i - first) * step``."""

    first: int
    start: int
    step: float

    def ts(self, i: int, jitter: float) -> int:
        return self.start + int(max(0.0, i - self.first + jitter) * self.step)


# ----- users -----------------------------------------------------------------


def user_id(k: int) -> str:
    return f"seed-user-{k:04d}"


def nick_for(k: int) -> str:
    """``alice``... then ``alice1``...: unique, even case-insensitively."""
    name = NAMES[k % len(NAMES)]
    rounds = k // len(NAMES)
    return name if rounds == 0 else f"{name}{rounds}"


def ensure_users(db: sqlite_utils.Database, count: int) -> list[SeedUser]:
    """Insert the seed users that are missing; return them with their stored nicks."""
    created = now_ms()
    rows = (
        {
            "id": user_id(k),
            "nick": nick_for(k),
            # Nobody logs in as a seed user: the token is thrown away.
            "token_hash": hash_token(secrets.token_urlsafe(32)),
            "created": created,
        }
        for k in range(count)
    )
    with db.atomic():
        db.table("users").insert_all(rows, ignore=True)
    ids = [user_id(k) for k in range(count)]
    nicks: dict[str, str] = {}
    for start in range(0, count, 500):
        part = ids[start : start + 500]
        marks = ", ".join("?" * len(part))
        sql = f"SELECT id, nick FROM users WHERE id IN ({marks})"
        nicks.update(db.execute(sql, part).fetchall())
    return [SeedUser(uid, nicks[uid]) for uid in ids]


# ----- text ------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut if len(cut) >= 3 else text[:limit]


def pick(rng: random.Random, items: Sequence[str]) -> str:
    """``rng.choice``, about twice as fast (this runs millions of times)."""
    return items[int(rng.random() * len(items))]


def fill(rng: random.Random, templates: Sequence[str], mention: str) -> str:
    """One sentence from ``templates``, sometimes capitalised and punctuated."""
    text = pick(rng, templates)
    if "{" in text:
        text = text.format(nick=mention, subject=pick(rng, SUBJECTS), state=pick(rng, STATES))
    if text[-1].isalnum() and rng.random() < 0.4:
        text += pick(rng, (".", "!", "..."))
    return text[0].upper() + text[1:] if rng.random() < 0.3 else text


def join(parts: Sequence[str]) -> str:
    """Sentences as one line, each but the last ending in punctuation."""
    return " ".join(
        p + "." if p[-1].isalnum() and n < len(parts) else p for n, p in enumerate(parts, 1)
    )


def statements(rng: random.Random, mention: str, low: int, high: int) -> list[str]:
    """``low`` to ``high`` statements, with a question now and then."""
    return [
        fill(rng, QUESTIONS if rng.random() < 0.2 else STATEMENTS, mention)
        for _ in range(rng.randint(low, high))
    ]


def chat_text(rng: random.Random, mention: str) -> str:
    """A whole message: a greeting, reply, question or remark; now and then an essay.

    ``mention`` is the nick a greeting or reply addresses.
    """
    if rng.random() < LONG_SHARE:
        parts = [pick(rng, ESSAY_OPENERS), *statements(rng, mention, 8, 40)]
        return clip(join(parts), rng.randint(SHORT_MAX + 1, MAX_TEXT))
    roll = rng.random()
    if roll < 0.08:
        parts = [fill(rng, GREETINGS, mention), *statements(rng, mention, 0, 1)]
    elif roll < 0.40:
        reply = fill(rng, REPLIES, mention)
        parts = [f"@{mention} {reply}" if rng.random() < 0.3 else reply]
        if rng.random() < 0.25:
            parts += statements(rng, mention, 1, 2)
    elif roll < 0.60:
        parts = [fill(rng, QUESTIONS, mention)]
    else:
        parts = statements(rng, mention, 1, 1 if rng.random() < 0.7 else 3)
    text = join(parts)
    if rng.random() < 0.12:
        text += " " + pick(rng, EMOJI) * rng.choice((1, 1, 1, 2, 3))
    return clip(text, SHORT_MAX)


# ----- messages --------------------------------------------------------------


class Chatter:
    """Deterministic messages for one ``(seed, users)`` history."""

    def __init__(self, seed: int, users: Sequence[SeedUser]) -> None:
        self.seed = seed
        self.users = users
        # Some people talk much more than others (a shuffled Zipf-like spread).
        weights = [1 / (rank + 1) ** 0.8 for rank in range(len(users))]
        random.Random(f"quartchat-seed:{seed}:{len(users)}:weights").shuffle(weights)
        self.cumulative = list(itertools.accumulate(weights))

    def offset(self, i: int) -> str:
        return f"seed-{self.seed}-{len(self.users)}-{i}"

    def block(self, b: int) -> list[Line]:
        """Messages ``b * BLOCK`` to ``(b + 1) * BLOCK - 1``."""
        rng = random.Random(f"quartchat-seed:{self.seed}:{len(self.users)}:{b}")
        total, n = self.cumulative[-1], len(self.users)
        lines: list[Line] = []
        previous = rng.randrange(n)
        for _ in range(BLOCK):
            sender = min(bisect.bisect(self.cumulative, rng.random() * total), n - 1)
            recipient = None
            if n > 1 and rng.random() < PRIVATE_SHARE:
                recipient = rng.randrange(n - 1)
                recipient += recipient >= sender
            other = recipient if recipient is not None else previous
            if other == sender:
                other = (sender + 1) % n
            text = chat_text(rng, self.users[other].nick)
            lines.append(Line(sender, recipient, text, rng.random()))
            previous = sender
        return lines

    def lines(self, start: int, stop: int) -> Iterator[tuple[int, Line]]:
        """``(i, line)`` for ``start <= i < stop``."""
        for b in range(start // BLOCK, (stop + BLOCK - 1) // BLOCK):
            base = b * BLOCK
            for j, line in enumerate(self.block(b)):
                if start <= base + j < stop:
                    yield base + j, line

    def rows(self, start: int, stop: int, timeline: Timeline) -> Iterator[tuple[object, ...]]:
        """Rows for ``messages`` in :data:`COLUMNS` order."""
        users = self.users
        for i, line in self.lines(start, stop):
            sender = users[line.sender]
            to = None if line.recipient is None else users[line.recipient]
            yield (
                sender.id,
                sender.nick,
                None if to is None else to.id,
                None if to is None else to.nick,
                line.text,
                timeline.ts(i, line.jitter),
                self.offset(i),
                GENERAL if to is None else None,  # public chatter is general's
            )


def existing_count(db: sqlite_utils.Database, chatter: Chatter) -> int:
    """Messages of this history already stored (through the UNIQUE index)."""
    prefix = chatter.offset(0)[:-1]  # "seed-S-K-"
    upper = prefix[:-1] + "."  # the first string after every "seed-S-K-..."
    total = 0
    for user in chatter.users:
        row = db.execute(
            "SELECT COUNT(*) FROM messages"
            " WHERE sender = ? AND client_offset >= ? AND client_offset < ?",
            [user.id, prefix, upper],
        ).fetchone()
        total += int(row[0])
    return total


def plan_timeline(db: sqlite_utils.Database, chatter: Chatter, count: int) -> Timeline:
    """Spread the missing messages over the minutes before now, after the newest one.

    Chunks commit in order, so the stored part of a history is its first
    messages; the rest get timestamps above every stored one, keeping ids in
    time order even when the file already holds real messages.
    """
    first = min(existing_count(db, chatter), count)
    newest = int(db.execute("SELECT COALESCE(MAX(ts), 0) FROM messages").fetchone()[0])
    end = now_ms()
    missing = max(count - first, 1)
    start = max(newest + 1, end - missing * GAP_MS)
    # Squeezed (equal stamps at worst) rather than pushed into the future when
    # the newest stored message is recent.
    step = max(end - start, 0) / missing
    return Timeline(first=first, start=start, step=step)


# ----- progress --------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class Progress:
    """A one-line progress bar, redrawn at most every :data:`PROGRESS_INTERVAL`."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.started = time.perf_counter()
        self.drawn = 0.0
        self.shown = -1

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.drawn < PROGRESS_INTERVAL:
            return
        self.drawn, self.shown = now, done
        elapsed = max(now - self.started, 1e-9)
        share = done / self.total if self.total else 1.0
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {share:6.1%} {done:>{len(str(self.total))}}/{self.total} rows"
            f"  {rate:8.0f} rows/s  ETA {duration(eta):>7}"
        )
        self.stream.flush()

    def finish(self, done: int) -> None:
        if done != self.shown:
            self.update(done, force=True)
        self.stream.write("\n")
        self.stream.flush()


# ----- main ------------------------------------------------------------------


def insert_messages(
    db: sqlite_utils.Database, chatter: Chatter, count: int, progress: Progress
) -> int:
    """Insert messages ``0..count-1`` chunk by chunk; return how many were new.

    Only the missing ones are sent to SQLite: an ignored duplicate still
    spends an AUTOINCREMENT id, so resending the stored part would leave a gap
    in the ids on every rerun. (``ignore`` stays only for a history with a
    hole in its stored part, which this script never makes.)
    """
    timeline = plan_timeline(db, chatter, count)
    table = db.table("messages")
    before = db.conn.total_changes
    for start in range(timeline.first, count, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, count)
        rows = itertools.chain([COLUMNS], chatter.rows(start, stop, timeline))
        with db.atomic():
            table.insert_all(rows, batch_size=STATEMENT_ROWS, ignore=True)
        progress.update(stop)
    return db.conn.total_changes - before


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers no smaller than ``low``."""

    def check(raw: str) -> int:
        value = int(raw)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return check


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fill a quartchat store with realistic, reproducible chat history."
    )
    parser.add_argument("--count", type=at_least(0), required=True, help="messages to seed")
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("QUARTCHAT_DB", "chat.db")),
        help="SQLite file (default: $QUARTCHAT_DB or chat.db)",
    )
    parser.add_argument("--users", type=at_least(1), default=20, help="seed users (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    db = connect(args.db)
    try:
        migrate(db)
        # Bulk load only, this connection only: a seed tool, not the server.
        # In WAL mode NORMAL skips the fsync per commit; a power cut may lose
        # the last chunks (never corrupt the file), and a rerun puts them back.
        db.execute("PRAGMA synchronous = NORMAL")
        chatter = Chatter(args.seed, ensure_users(db, args.users))
        progress = Progress(args.count, sys.stderr)
        inserted = insert_messages(db, chatter, args.count, progress)
        progress.finish(args.count)
    except KeyboardInterrupt:
        print("\ninterrupted: committed chunks are kept; rerun to finish", file=sys.stderr)
        return 130
    finally:
        db.close()
    elapsed = time.perf_counter() - started
    print(
        f"seeded {args.count} messages (inserted {inserted}, already there"
        f" {args.count - inserted}) from {args.users} users into {args.db}"
        f" in {elapsed:.1f} s ({args.count / max(elapsed, 1e-9):.0f} rows/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
