"""The ``quartchat`` command as an operator meets it in the first hour: bad
options, what a fresh Redis logs, and what a stop says and leaves on disk."""

from __future__ import annotations

import fcntl
import signal
import socket
from pathlib import Path

import pytest
import trio

from chatclient import ChatClient
from quartchat.backends import hold_single_writer
from quartchat.errors import ConfigError
from redis_server import RedisServer
from served import QUARTCHAT, Servers

#: ``quartchat`` without the test's own ``--bind`` (some tests give a bad one).
COMMAND = QUARTCHAT[:3]


@pytest.mark.parametrize(
    ("options", "cause"),
    [
        (["--bind", "127.0.0.1:99999"], "--bind 127.0.0.1:99999: port must be 0-65535"),
        (["--bind", "127.0.0.1:http"], "--bind 127.0.0.1:http: port 'http' is not a number"),
        (["--bind", "127.0.0.1"], "--bind 127.0.0.1: no port (write HOST:PORT,"),
        (["--bind", "[::1]8000"], "--bind [::1]8000: no port (write HOST:PORT,"),
        (["--bind", "fd://three"], "--bind fd://three: 'three' is not a file descriptor"),
        (["--bind", "unix:"], "--bind unix:: no socket path after 'unix:'"),
        (["--bind", "no-such-host.invalid:8123"], "--bind no-such-host.invalid:8123: "),
        (["--workers", "abc"], "--workers: 'abc' is not a whole number"),
        (["--workers", "0"], "--workers: 0 is too few (1 or more)"),
        (["--wokers", "2"], "unrecognized arguments: --wokers 2 (see quartchat --help)"),
        (["migrate", "--to"], "quartchat migrate: argument --to/--url: expected one argument"),
    ],
)
async def test_a_bad_option_is_one_line_and_status_2(
    servers: Servers, options: list[str], cause: str
) -> None:
    server = await servers.launch([*COMMAND, *options])

    assert await server.wait_exit() == 2
    assert len(server.output) == 1, server.text
    assert server.output[0].startswith("quartchat"), server.output[0]
    assert cause in server.output[0]


async def test_an_address_in_use_is_one_line_and_status_2(servers: Servers) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        server = await servers.launch([*COMMAND, "--bind", address])

        assert await server.wait_exit() == 2
    assert server.output == [f"quartchat: --bind {address}: cannot listen: Address already in use"]


async def test_help_names_the_serving_options_and_the_migration(servers: Servers) -> None:
    server = await servers.launch([*COMMAND, "--help"])

    assert await server.wait_exit() == 0
    for named in ("--bind HOST:PORT", "--workers N", "quartchat migrate --help"):
        assert named in server.text


async def test_a_fresh_or_restarted_redis_logs_no_script_miss_at_info(
    servers: Servers, nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    env = {"QUARTCHAT_REDIS_URL": redis_server.url}
    server = await servers.start(QUARTCHAT, env=env)
    client, _ = await ChatClient.join(nursery, server.ws_url)
    await client.say("one", "on a fresh Redis")
    await client.aclose()

    redis_server.restart()  # its script cache is empty again
    client, _ = await ChatClient.join(nursery, server.ws_url)
    await client.say("two", "on a restarted Redis")
    await client.aclose()
    assert await server.stop(signal.SIGTERM) == 0

    misses = [line for line in server.output if "No matching script" in line]
    assert not misses, server.text


async def test_a_stop_says_what_it_did_and_leaves_only_the_database(
    servers: Servers, nursery: trio.Nursery
) -> None:
    server = await servers.start(QUARTCHAT)
    clients = [(await ChatClient.join(nursery, server.ws_url))[0] for _ in range(3)]
    await clients[0].say("one", "kept in chat.db")

    assert await server.stop(signal.SIGTERM) == 0
    for client in clients:
        await client.aclose()

    stopped = [line for line in server.output if "stopped:" in line]
    assert len(stopped) == 1, server.text
    database = servers.db_path
    assert stopped[0].endswith(
        f"[INFO] stopped: closed 3 chat sockets, folded the WAL into {database}"
    ), stopped[0]
    assert sorted(path.name for path in servers.folder.glob("chat.db*")) == ["chat.db"]


async def test_a_stop_of_several_workers_says_what_each_did(
    servers: Servers, nursery: trio.Nursery, redis_url: str
) -> None:
    env = {"QUARTCHAT_REDIS_URL": redis_url}
    server = await servers.start([*QUARTCHAT, "--workers", "2"], env=env)
    client, _ = await ChatClient.join(nursery, server.ws_url)

    assert await server.stop(signal.SIGTERM) == 0
    await client.aclose()

    stopped = [line.split("[INFO] ", 1)[1] for line in server.output if "stopped:" in line]
    workers = sorted(line for line in stopped if "chat socket" in line)
    assert workers == [
        "stopped: closed 0 chat sockets (the chat is kept in Redis)",
        "stopped: closed 1 chat socket (the chat is kept in Redis)",
    ], server.text
    assert "stopped: 2 workers ended" in stopped, server.text


def test_giving_up_the_database_removes_its_lock_file(tmp_path: Path) -> None:
    database = tmp_path / "chat.db"
    lock_file = tmp_path / "chat.db.lock"
    release = hold_single_writer(database)
    assert lock_file.exists()

    release()

    assert not lock_file.exists()
    hold_single_writer(database)()  # taken again at once


def test_a_lock_won_on_a_just_removed_lock_file_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start that opened the lock file just before its holder stopped (and
    removed it) locks the file at the path, not the removed one: otherwise a
    third start would lock a new file and two servers would share the database."""
    database = tmp_path / "chat.db"
    holder = hold_single_writer(database)
    real_flock = fcntl.flock
    stopped_between: list[bool] = []

    def holder_stops_first(fd: int, operation: int) -> None:
        if not stopped_between:  # between this start's open and its lock
            stopped_between.append(True)
            holder()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", holder_stops_first)
    second = hold_single_writer(database)
    monkeypatch.undo()

    assert stopped_between
    with pytest.raises(ConfigError, match="is already served by another process"):
        hold_single_writer(database)
    second()
