"""The lean connection that carries the per-message Redis calls (the append
script and the tail's XREAD): what it sends, what it reads back, and how it
fails and comes back, against a private redis-server."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable

import pytest
import trio

from quartchat.backends.redis_lean import Address, LeanConnection, command
from quartchat.errors import StoreError, Unavailable
from redis_server import RedisServer

SCRIPT = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}"

Connect = Callable[..., LeanConnection]


@pytest.fixture
async def connect(redis_server: RedisServer) -> AsyncIterator[Connect]:
    """Lean connections to the test's Redis (``url`` to override), closed at the end."""
    opened: list[LeanConnection] = []

    def open_one(url: str = redis_server.url, purpose: str = "test") -> LeanConnection:
        opened.append(LeanConnection(url, purpose))
        return opened[-1]

    yield open_one
    for connection in opened:
        await connection.aclose()


def test_urls_are_read_as_coredis_reads_them() -> None:
    assert Address.from_url("redis://10.0.0.5:6390/3") == Address(host="10.0.0.5", port=6390, db=3)
    assert Address.from_url("redis://localhost") == Address(host="localhost")
    assert Address.from_url("redis://app:pw@h:1/0") == Address(
        host="h", port=1, username="app", password="pw"
    )
    assert Address.from_url("unix://:pw@/run/redis.sock?db=2") == Address(
        path="/run/redis.sock", password="pw", db=2
    )
    checked = Address.from_url("rediss://cache.example/1?ssl_cert_reqs=required")
    assert (checked.host, checked.db) == ("cache.example", 1)
    assert checked.tls is not None and checked.tls.verify_mode == ssl.CERT_REQUIRED
    unchecked = Address.from_url("rediss://cache.example/1?ssl_cert_reqs=none")
    assert unchecked.tls is not None and unchecked.tls.verify_mode == ssl.CERT_NONE


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    assert command("GET", "k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert (
        command("X", 12, 0.5, "é")
        == b"*4\r\n$1\r\nX\r\n$2\r\n12\r\n$3\r\n0.5\r\n$2\r\n\xc3\xa9\r\n"
    )


async def test_a_script_is_loaded_once_and_again_after_redis_forgets_it(
    connect: Connect,
) -> None:
    connection = connect()
    assert await connection.run_script(SCRIPT, ["k"], ["a", 21]) == ["k", "a", 42]
    assert await connection.run_script(SCRIPT, ["k"], ["b", 1.5]) == ["k", "b", 3]
    await connection.call("SCRIPT", "FLUSH")  # as a Redis restarted without it would
    assert await connection.run_script(SCRIPT, ["k"], ["c", 2]) == ["k", "c", 4]


async def test_xread_returns_entries_after_a_cursor_and_nothing_when_the_block_runs_out(
    connect: Connect,
) -> None:
    connection = connect()
    for n in (1, 2, 3):
        await connection.call("XADD", "s", f"{n}-0", "text", f"m{n}", "nick", "é")
    entries = await connection.xread("s", "1-0", 10, 1)
    assert entries == [
        ("2-0", ["text", "m2", "nick", "é"]),
        ("3-0", ["text", "m3", "nick", "é"]),
    ]
    assert await connection.xread("s", "3-0", 10, 50) == []


async def test_a_blocked_read_returns_the_entry_added_meanwhile(connect: Connect) -> None:
    reader, writer = connect(), connect()
    got: list[list[tuple[str, list[str]]]] = []
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            got.append(await reader.xread("s", "0-0", 10, 5_000))

        nursery.start_soon(read)
        await trio.sleep(0.2)
        await writer.call("XADD", "s", "7-0", "f", "v")
    assert got == [[("7-0", ["f", "v"])]]


async def test_a_refusal_is_a_store_error_and_the_connection_stays_usable(
    connect: Connect,
) -> None:
    connection = connect(purpose="count")
    await connection.call("SET", "k", "text")
    with pytest.raises(StoreError, match="refused to count") as refused:
        await connection.call("INCR", "k")
    assert not isinstance(refused.value, Unavailable)
    assert await connection.call("GET", "k") == "text"


async def test_down_is_unavailable_and_a_restart_needs_nothing_from_the_caller(
    redis_server: RedisServer, connect: Connect
) -> None:
    connection = connect(purpose="read")
    await connection.call("SET", "k", "kept")
    redis_server.stop()
    with pytest.raises(Unavailable, match="unreachable"):
        await connection.call("GET", "k")
    redis_server.start()
    assert await connection.call("GET", "k") == "kept"
    # Restarted while this connection was idle: the first use finds it
    # closed, and the command goes once more on a new connection.
    redis_server.restart()
    assert await connection.call("GET", "k") == "kept"


async def test_a_cancelled_read_leaves_no_answer_behind_for_the_next_call(
    connect: Connect,
) -> None:
    connection = connect()
    with trio.move_on_after(0.2):
        await connection.xread("s", "0-0", 10, 5_000)
    # Had the cancelled read's connection been kept, these would queue
    # behind its block and each would be handed the answer before its own.
    with trio.fail_after(10):
        await connection.call("XADD", "s", "1-0", "f", "v")
        await connection.call("SET", "k", "v")
        assert await connection.call("GET", "k") == "v"


async def test_a_password_in_the_url_logs_in_and_a_wrong_one_is_refused(
    redis_server: RedisServer, connect: Connect
) -> None:
    await connect().call("CONFIG", "SET", "requirepass", "s3cret")
    base = redis_server.url.rsplit("/", 1)[0].replace("redis://", "redis://:s3cret@")
    in_db_2 = connect(base + "/2")
    await in_db_2.call("SET", "k", "in db 2")
    assert await in_db_2.call("GET", "k") == "in db 2"
    assert await connect(base + "/0").call("GET", "k") is None
    with pytest.raises(StoreError, match="login"):
        await connect(base.replace("s3cret", "nope") + "/0").call("GET", "k")
