"""scripts/seed_history.py: bulk, idempotent, realistic seed data the store can read."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from quartchat.models import Draft, User
from quartchat.store import Store

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "seed_history.py"
SUMMARY = re.compile(
    r"seeded (\d+) messages \(inserted (\d+), already there (\d+)\) from (\d+) users"
    r" into (.+) in [\d.]+ s \(\d+ rows/s\)"
)


@pytest.fixture(scope="module")
def seed() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("seed_history", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_history"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["seed_history"]


def run(seed: ModuleType, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, ...]:
    """Run the script's main; return (count, inserted, already there, users)."""
    assert seed.main(list(argv)) == 0
    out, err = capsys.readouterr()
    match = SUMMARY.fullmatch(out.strip())
    assert match, out
    assert "100.0%" in err
    return tuple(int(g) for g in match.groups()[:4])


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def messages(db: Path) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT id, sender, nick, recipient, recipient_nick, text, ts, client_offset"
        " FROM messages ORDER BY id",
    )


def assert_time_ordered(db: Path) -> None:
    stamps = [row[6] for row in messages(db)]
    assert stamps == sorted(stamps)


def test_seeds_reruns_and_grows(
    seed: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    args = ("--db", str(db), "--users", "5")
    assert run(seed, capsys, "--count", "500", *args) == (500, 500, 0, 5)

    users = dict(query(db, "SELECT id, nick FROM users"))
    assert sorted(users) == [f"seed-user-{k:04d}" for k in range(5)]
    assert len({nick.lower() for nick in users.values()}) == 5
    rows = messages(db)
    assert len(rows) == 500
    assert_time_ordered(db)
    assert rows[-1][6] <= time.time() * 1000
    assert {row[1] for row in rows} <= set(users)
    assert all(users[sender] == nick for _, sender, nick, *_ in rows)
    assert all(3 <= len(row[5]) <= 2000 for row in rows)
    assert sum(len(row[5]) <= 200 for row in rows) >= 490
    private = [row for row in rows if row[3] is not None]
    assert 3 <= len(private) <= 40
    for _, sender, _, recipient, recipient_nick, *_ in private:
        assert recipient in users and recipient != sender
        assert recipient_nick == users[recipient]
    assert query(db, "SELECT COUNT(*) FROM messages WHERE recipient = sender") == [(0,)]

    assert run(seed, capsys, "--count", "500", *args) == (500, 0, 500, 5)
    assert messages(db) == rows

    assert run(seed, capsys, "--count", "700", *args) == (700, 200, 500, 5)
    grown = messages(db)
    assert len(grown) == 700
    assert grown[:500] == rows
    assert [row[7] for row in grown] == [f"seed-1-5-{i}" for i in range(700)]
    assert [row[0] for row in grown] == list(range(1, 701))  # reruns spent no ids
    assert_time_ordered(db)
    assert query(db, "SELECT COUNT(*) FROM users") == [(5,)]

    viewer = "seed-user-0000"
    store = Store(db)
    try:
        page, older = store.history(viewer, None, 50)
    finally:
        store.close()
    visible = [row for row in grown if row[3] is None or viewer in (row[1], row[3])]
    assert [(m.id, m.sender.id, m.text, m.ts) for m in page] == [
        (row[0], row[1], row[5], row[6]) for row in visible[-50:]
    ]
    assert older


def test_same_arguments_give_the_same_history(
    seed: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def content(db: Path) -> list[tuple[Any, ...]]:
        return [row[1:6] + row[7:] for row in messages(db)]

    for name, seed_arg in (("a.db", "7"), ("b.db", "7"), ("c.db", "8")):
        run(seed, capsys, "--count", "300", "--users", "4", "--seed", seed_arg,
            "--db", str(tmp_path / name))  # fmt: skip
    assert content(tmp_path / "a.db") == content(tmp_path / "b.db")
    assert [r[4] for r in content(tmp_path / "a.db")] != [r[4] for r in content(tmp_path / "c.db")]


def test_keeps_ids_in_time_order_after_live_messages(
    seed: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "live.db"
    store = Store(db)
    try:
        user, _ = store.create_user("Alice")
        store.insert([Draft(User(user.id, "Alice"), "c1", "typed by hand", None)])
    finally:
        store.close()
    assert run(seed, capsys, "--count", "200", "--users", "3", "--db", str(db)) == (200, 200, 0, 3)
    assert_time_ordered(db)
    assert query(db, "SELECT COUNT(*) FROM messages") == [(201,)]


def test_nicks_stay_unique_with_many_users(seed: ModuleType) -> None:
    nicks = [seed.nick_for(k) for k in range(500)]
    assert len({nick.lower() for nick in nicks}) == 500


def test_rejects_bad_arguments(seed: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--count", "-1"], ["--count", "5", "--users", "0"], []):
        with pytest.raises(SystemExit) as exc:
            seed.main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


def test_runs_as_a_script_with_db_from_environment(tmp_path: Path) -> None:
    env = {**os.environ, "QUARTCHAT_DB": str(tmp_path / "env.db")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "50", "--users", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = SUMMARY.fullmatch(done.stdout.strip())
    assert match, done.stdout
    assert match.groups() == ("50", "50", "0", "3", str(tmp_path / "env.db"))
    assert "rows/s" in done.stderr and "ETA" in done.stderr
    assert query(tmp_path / "env.db", "SELECT COUNT(*) FROM messages") == [(50,)]
