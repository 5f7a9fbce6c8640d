"""A full disk: writes fail, say so once, and resume when space returns.

The database lives on a 2 MiB tmpfs that a filler file fills. Mounting one
needs root (CI runs the tests as root); elsewhere these tests are skipped,
saying why. The WAL's bound needs no mount.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from chatclient import ChatClient
from quartchat import store as store_module
from quartchat.errors import StoreError
from quartchat.models import Draft, User
from quartchat.store import WAL_CHECKPOINT_BYTES, AsyncStore, Store
from rawhttp import request
from served import PATIENCE, QUARTCHAT, Servers

#: Room for one more commit above the WAL's bound: a single message's commit
#: writes a handful of pages (about 16 KB).
ONE_COMMIT = 64 * 1024
#: A message that takes several pages of its own (2000 four-byte code points),
#: so the database file must grow to take it in at a checkpoint.
BIG_TEXT = "\U0001f600" * 2000
FULL = "database or disk is full"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 2 MiB tmpfs of its own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the tests as root)")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file in ``folder`` until its disk is full, to the last byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def draft(sender: User, offset: str, text: str = "hello") -> Draft:
    return Draft(sender=sender, client_offset=offset, text=text, recipient=None)


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


# ----- the WAL's bound: no mount needed ---------------------------------------


def test_the_wal_stays_within_its_bound_through_single_message_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    store = Store(path)
    alice, _ = store.create_user("alice")
    largest = 0
    for i in range(400):
        store.insert([draft(alice, f"k{i}")])
        largest = max(largest, wal_size(path))
    store.close()
    assert largest <= WAL_CHECKPOINT_BYTES + ONE_COMMIT


# ----- the store on a full disk ----------------------------------------------


async def test_writes_on_a_full_disk_fail_are_logged_once_and_resume_when_space_returns(
    small_disk: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "WRITE_PROBE_INTERVAL", 0)
    # One line per kind per hour here, so how long the test takes cannot matter.
    monkeypatch.setattr(store_module.FAILURE_LINES, "interval", 3600)
    store = await AsyncStore.open(small_disk / "chat.db")
    alice, _ = await store.create_user("alice")
    await store.insert([draft(alice, "before")])
    await store.check_writes()

    filler = fill(small_disk)
    failed = 0
    with caplog.at_level(logging.INFO, logger="quartchat"):
        for i in range(200):
            try:
                await store.insert([draft(alice, f"full{i}", BIG_TEXT)])
            except StoreError:
                failed += 1
        with pytest.raises(StoreError, match=FULL):
            await store.check_writes()
    assert failed > 150  # the WAL's own space took a few before the disk said no
    logged = [r for r in caplog.records if r.name.startswith("quartchat")]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert FULL in logged[0].getMessage() and logged[0].exc_info is None

    filler.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="quartchat"):
        await store.check_writes()  # its probe write succeeds: healthy again
    assert any("succeed again" in r.getMessage() for r in caplog.records)
    # Unbounded, these commits' WAL (about 16 KB each) would outgrow the disk
    # though their messages take a few pages: checkpointed, the WAL is reused.
    for i in range(400):
        await store.insert([draft(alice, f"after{i}")])
    await store.aclose()
    assert store.close_failure is None


async def test_a_close_whose_checkpoint_fails_closes_and_says_why_in_a_store_error(
    small_disk: Path,
) -> None:
    path = small_disk / "chat.db"
    store = Store(path)
    alice, _ = store.create_user("alice")
    posted = store.insert([draft(alice, f"k{i}", BIG_TEXT) for i in range(5)])
    filler = fill(small_disk)

    with pytest.raises(StoreError, match=f"cannot use database {path}: {FULL}"):
        store.close()

    filler.unlink()
    reopened = Store(path)
    assert reopened.committed_after(0, 100) == [
        p.message for p in posted if not isinstance(p, StoreError)
    ]
    reopened.close()


# ----- the real server ---------------------------------------------------------


#: Rate limits out of the way: the test sends failing messages in a row.
UNLIMITED = {
    "QUARTCHAT_SEND_RATE": "1000",
    "QUARTCHAT_SEND_BURST": "1000",
    "QUARTCHAT_FRAME_RATE": "1000",
    "QUARTCHAT_FRAME_BURST": "1000",
}


async def acked_id(client: ChatClient, offset: str, text: str = "hello") -> int:
    """Send a message that must be acked; its id."""
    frame = await answer(client, offset, text)
    assert frame["type"] == "ack", frame
    return int(frame["id"])


async def answer(client: ChatClient, offset: str, text: str = "hello") -> dict[str, Any]:
    """Send a message; its ack or its error frame."""
    await client.send(type="send", client_offset=offset, text=text)
    while True:
        frame = await client.recv(PATIENCE)
        if frame.get("client_offset") == offset and frame["type"] in ("ack", "error"):
            return frame


async def test_the_server_on_a_full_disk_says_so_recovers_and_stops_and_restarts_in_one_line(
    servers: Servers, small_disk: Path, nursery: trio.Nursery
) -> None:
    env = {"QUARTCHAT_DB": str(small_disk / "chat.db"), **UNLIMITED}
    server = await servers.start(QUARTCHAT, env=env)
    client, _ = await ChatClient.join(nursery, server.ws_url)
    acked = [await acked_id(client, f"a{i}") for i in range(3)]
    assert (await request(server, "/healthz"))[0] == 200

    filler = fill(small_disk)
    lines_before = len(server.output)
    started = trio.current_time()
    answers = [await answer(client, f"f{i}") for i in range(100)]
    seconds = trio.current_time() - started
    errors = [a for a in answers if a["type"] == "error"]
    acked += [a["id"] for a in answers if a["type"] == "ack"]
    assert len(errors) > 80  # the WAL's own space took a few before the disk said no
    assert {e["code"] for e in errors} == {"internal"}
    assert (await request(server, "/healthz"))[0] == 503
    logged = server.output[lines_before:]
    # One line per kind (a failed write, a failed checkpoint) per second at most.
    assert len(logged) <= 2 * (1 + math.ceil(seconds)), "\n".join(logged)
    assert not any("Traceback" in line for line in logged)

    filler.unlink()
    # As many commits as took the freed space when the WAL was unbounded.
    acked += [await acked_id(client, f"back{i}") for i in range(300)]
    assert (await request(server, "/healthz"))[0] == 200

    # Committed, but not yet checkpointed into the file: a stop must fold
    # these pages into a file that has no room to grow.
    acked += [await acked_id(client, f"big{i}", BIG_TEXT) for i in range(5)]
    filler = fill(small_disk)
    await client.aclose()
    lines_before = len(server.output)
    assert await server.stop(signal.SIGTERM) == 1
    stop_errors = [line for line in server.output[lines_before:] if "[ERROR]" in line]
    assert len(stop_errors) == 1 and FULL in stop_errors[0], server.text
    assert "Traceback" not in server.text

    restarted = await servers.launch(QUARTCHAT, env=env)
    assert await restarted.wait_exit() == 2
    assert len(restarted.output) == 1, restarted.text
    assert restarted.output[0].startswith(f"quartchat: cannot use database {small_disk}")
    assert FULL in restarted.output[0]

    filler.unlink()
    with sqlite3.connect(small_disk / "chat.db") as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM messages")}
    assert set(acked) <= stored
