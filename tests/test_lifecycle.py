"""Start-up and shutdown of the real server commands, as an operator sees them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
from pathlib import Path

import pytest
import trio

from chatclient import NOISE, ChatClient
from quartchat.backends.redis_log import RedisLog
from quartchat.store import Store
from served import HYPERCORN, PATIENCE, QUARTCHAT, ROOT, Servers


def stored_ids(db_file: Path, tmp_path: Path) -> list[int]:
    """Message ids in a copy of ``db_file`` made without its -wal and -shm
    files, the way a backup that copies just the database sees it."""
    backup = tmp_path / "backup"
    backup.mkdir(exist_ok=True)
    shutil.copy(db_file, backup / db_file.name)
    with sqlite3.connect(backup / db_file.name) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]


async def test_after_a_stop_the_database_file_alone_holds_every_acked_message(
    servers: Servers, tmp_path: Path, nursery: trio.Nursery
) -> None:
    server = await servers.start(HYPERCORN)
    client, _ = await ChatClient.join(nursery, server.ws_url)
    acked = await client.say_many(["one", "two", "three"])

    assert await server.stop(signal.SIGTERM) == 0
    await client.aclose()
    assert stored_ids(servers.db_path, tmp_path) == acked


@pytest.mark.parametrize("command", [HYPERCORN, QUARTCHAT], ids=["hypercorn", "quartchat"])
async def test_the_log_says_where_it_runs_once(servers: Servers, command: list[str]) -> None:
    server = await servers.start(command)
    await server.stop(signal.SIGTERM)
    assert server.text.count("Running on") == 1, server.text


def test_opening_an_up_to_date_database_writes_nothing_to_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    Store(path).close()
    written = path.stat().st_mtime_ns

    store = Store(path)
    store.close()

    assert path.stat().st_mtime_ns == written


async def join_many(nursery: trio.Nursery, url: str, count: int) -> list[ChatClient]:
    clients = []
    for _ in range(count):
        client, _ = await ChatClient.join(nursery, url)
        clients.append(client)
    return clients


async def collect_close_codes(clients: list[ChatClient], codes: list[int | None]) -> None:
    """Read every client to its close, appending the codes in the clients' order."""
    found: list[int | None] = [None] * len(clients)

    async def read(index: int) -> None:
        found[index] = await clients[index].close_code(within=PATIENCE)

    async with trio.open_nursery() as nursery:
        for index in range(len(clients)):
            nursery.start_soon(read, index)
    codes.extend(found)


@pytest.mark.parametrize(
    ("workers", "signalled"),
    [(1, "the server"), (2, "one worker")],
)
async def test_a_stop_closes_every_socket_with_1001_and_keeps_every_acked_message(
    servers: Servers,
    tmp_path: Path,
    nursery: trio.Nursery,
    workers: int,
    signalled: str,
    request: pytest.FixtureRequest,
) -> None:
    # A hundred new identities from one address: past the default burst.
    env = {"QUARTCHAT_NEW_IDENTITY_BURST": "1000"}
    if workers > 1:  # several workers share one chat through Redis
        env["QUARTCHAT_REDIS_URL"] = request.getfixturevalue("redis_url")
    server = await servers.start([*QUARTCHAT, "--workers", str(workers)], env=env)
    clients = await join_many(nursery, server.ws_url, 100)
    acked = []
    for number, client in enumerate(clients[:10]):
        for text in ("a", "b", "c"):
            await client.send(type="send", client_offset=f"{number}{text}", text=text)
            ack = await client.expect("ack", ignore=NOISE | {"message"})
            acked.append(ack["id"])

    codes: list[int | None] = []
    async with trio.open_nursery() as waiting:
        waiting.start_soon(collect_close_codes, clients, codes)
        pid = server.serving_pids()[0] if signalled == "one worker" else None
        assert await server.stop(signal.SIGTERM, pid=pid) == 0

    assert codes == [1001] * len(clients)
    for client in clients:
        await client.aclose()
    if workers > 1:
        assert await redis_ids(env["QUARTCHAT_REDIS_URL"], nursery) == sorted(acked)
    else:
        assert stored_ids(servers.db_path, tmp_path) == sorted(acked)


async def redis_ids(url: str, nursery: trio.Nursery) -> list[int]:
    """Message ids in the Redis log, read as a new worker would."""
    log = RedisLog(url)
    await nursery.start(log.run)
    replay = await log.read_after("a reader", 0, 10_000)
    await log.aclose()
    return [message.id for message in replay.messages]


async def test_several_workers_without_redis_are_refused_in_one_line(servers: Servers) -> None:
    server = await servers.launch([*QUARTCHAT, "--workers", "2"])

    assert await server.wait_exit() == 2
    assert len(server.output) == 1, server.text
    assert server.output[0].startswith("quartchat: --workers 2 needs QUARTCHAT_REDIS_URL")


async def test_a_second_server_on_one_database_is_refused_in_one_line(servers: Servers) -> None:
    await servers.start(QUARTCHAT)
    second = await servers.launch(QUARTCHAT)

    assert await second.wait_exit() == 2
    assert len(second.output) == 1, second.text
    assert "is already served by another process" in second.output[0]
    assert "QUARTCHAT_REDIS_URL" in second.output[0]


async def test_an_unreachable_redis_is_one_line_naming_the_setting(servers: Servers) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    server = await servers.launch(QUARTCHAT, env={"QUARTCHAT_REDIS_URL": url})

    assert await server.wait_exit() == 2
    assert len(server.output) == 1, server.text
    assert server.output[0].startswith(f"quartchat: QUARTCHAT_REDIS_URL={url}: Redis is")


def closed_port() -> int:
    """A loopback port nothing listens on (taken, then given back)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_only_database(folder: Path) -> Path:
    """An up-to-date database file that cannot be written."""
    path = folder / "chat.db"
    Store(path).close()
    path.chmod(0o444)
    return path


def without_root_override(command: list[str]) -> list[str]:
    """``command``, run so that file permissions bind it: root, unless it
    drops the capabilities that let it write a read-only file, writes anyway."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", *command]


@pytest.mark.parametrize(
    ("setting", "cause"),
    [
        ("QUARTCHAT_BACKLOG=abc", "QUARTCHAT_BACKLOG='abc': invalid literal"),
        ("QUARTCHAT_DB={folder}/no/such/folder/chat.db", "cannot open database"),
        ("read-only database", "attempt to write a readonly database"),
    ],
)
async def test_a_start_up_error_is_one_line_naming_its_cause_and_a_failure_status(
    servers: Servers, tmp_path: Path, setting: str, cause: str
) -> None:
    command, env = QUARTCHAT, {}
    if setting == "read-only database":
        command = without_root_override(QUARTCHAT)
        env["QUARTCHAT_DB"] = str(read_only_database(tmp_path))
    else:
        name, value = setting.format(folder=tmp_path).split("=", 1)
        env[name] = value

    server = await servers.launch(command, env=env)

    assert await server.wait_exit() == 2
    assert len(server.output) == 1, server.text
    assert server.output[0].startswith("quartchat: ")
    assert cause in server.output[0]


def test_the_documented_hypercorn_settings_are_the_shipped_ones() -> None:
    """``hypercorn --config hypercorn.toml`` and ``quartchat`` run alike."""
    shipped = ROOT / "quartchat" / "hypercorn.toml"
    assert (ROOT / "hypercorn.toml").read_text() == shipped.read_text()


#: The documented ``hypercorn --workers 2`` command, bound to a free port.
HYPERCORN_TWO_WORKERS = [*HYPERCORN[:-1], "--workers", "2", HYPERCORN[-1]]


async def test_hypercorn_workers_without_redis_end_the_service_naming_the_setting(
    servers: Servers,
) -> None:
    server = await servers.launch(HYPERCORN_TWO_WORKERS)

    await server.wait_exit()  # ended: no worker is left serving half a chat
    named = [line for line in server.output if "set QUARTCHAT_REDIS_URL" in line]
    assert named, server.text
    assert named[0].endswith("set QUARTCHAT_REDIS_URL so they share one chat through Redis")


async def test_hypercorn_workers_on_redis_serve_one_chat(
    servers: Servers, nursery: trio.Nursery, redis_url: str
) -> None:
    env = {"QUARTCHAT_REDIS_URL": redis_url}
    server = await servers.start(HYPERCORN_TWO_WORKERS, env=env)
    # Eight clients: the workers take connections as the kernel hands them out.
    clients = await join_many(nursery, server.ws_url, 8)

    for number, sender in enumerate(clients):
        ack = await sender.say(f"hi{number}", f"hi from {number}")
        for other in clients:
            if other is not sender:
                assert (await other.expect("message"))["id"] == ack["id"]
    for client in clients:
        await client.aclose()
