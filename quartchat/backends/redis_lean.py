"""A lean Redis connection for the two calls made once per message.

Each message costs one script call (the append) on the worker that commits
it, and one ``XREAD`` on every worker (the log's tail, with the ``HMGET`` of
the texts in the same write: :meth:`LeanConnection.pipeline`). Through coredis a
call took about 0.5 ms of the worker's CPU here, and a blocking read woken by
a new entry 1.4 ms (its writer and reader tasks, request objects, locks and
timeouts per call); over a plain socket with hiredis's C parser, 0.12-0.15
ms and 0.6 ms (``scripts/redis_call_cost.py``). With two workers those calls
were most of what the Redis mode spent beyond the SQLite mode per message.
Only these calls go this way: everything else stays on coredis.

A connection serves one task's calls, one at a time, so it needs no queue:
send the command (or a few), feed the answers' bytes to the parser until
they are whole.
A call that fails or is cancelled part-way leaves an answer pending, so the
connection is dropped then, and the next call opens a new one: Redis coming
back needs nothing more. What went wrong is told in the project's terms:
:class:`~quartchat.errors.Unavailable` (unreachable, or no answer in time)
or :class:`~quartchat.errors.StoreError` (Redis refused).
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import cast

import coredis
import hiredis
import trio
from coredis.connection import TCPLocation, UnixDomainSocketLocation

from ..errors import StoreError
from .redis_client import ANSWER_TIMEOUT, CONNECT_TIMEOUT, refused, unreachable

#: Bytes asked of the socket per receive (an answer may take several).
RECEIVE_SIZE = 65_536

#: One stream entry: its id and its fields as ``[name, value, name, value...]``.
Entry = tuple[str, list[str]]


@dataclass(frozen=True, slots=True)
class Address:
    """Where Redis is and how to log in, from a ``QUARTCHAT_REDIS_URL``."""

    host: str = "127.0.0.1"
    port: int = 6379
    #: A Unix socket's path (``unix://``), instead of host and port.
    path: str | None = None
    #: For ``rediss://``: the TLS settings, from the URL's ``ssl_*`` options.
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0

    @classmethod
    def from_url(cls, url: str) -> Address:
        """Read by coredis's own parser (its pool's location and connection
        options), so these connections reach Redis and log in exactly as the
        coredis client's do, whatever the URL holds."""
        pool = coredis.ConnectionPool.from_url(url)
        options = pool.connection_kwargs
        base = cls(
            tls=options.get("ssl_context"),
            username=options.get("username"),
            password=options.get("password"),
            db=int(options.get("db") or 0),
        )
        location = pool.location
        if isinstance(location, UnixDomainSocketLocation):
            return replace(base, path=location.path)
        if isinstance(location, TCPLocation):
            return replace(base, host=location.host, port=location.port)
        raise ValueError(f"not a Redis URL quartchat can follow: {url!r}")


def command(*args: str | int | float) -> bytes:
    """``args`` as one RESP command (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = (arg if isinstance(arg, str) else repr(arg)).encode()
        out += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(out)


class LeanConnection:
    """One Redis connection for one task's calls (see the module doc)."""

    def __init__(self, url: str, purpose: str) -> None:
        self._address = Address.from_url(url)
        #: What the calls are for, in error messages ("follow the log").
        self._purpose = purpose
        self._stream: trio.abc.Stream | None = None
        self._parser = hiredis.Reader(encoding="utf-8")
        self._lock = trio.StrictFIFOLock()
        #: Scripts Redis is known to hold, by their SHA1.
        self._loaded: set[str] = set()

    async def xread(self, key: str, after: str, count: int, block_ms: int) -> list[Entry]:
        """Entries of stream ``key`` after id ``after``, at most ``count``,
        waiting up to ``block_ms`` for one; ``[]`` if none came."""
        reply = await self.call(
            "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", key, after,
            blocks_for=block_ms / 1000,
        )  # fmt: skip
        if reply is None:  # the block ran out
            return []
        # [[key, [[id, [field, value, ...]], ...]]]: one stream was asked for.
        ((_, entries),) = cast(list[tuple[str, list[Entry]]], reply)
        return [(entry_id, fields) for entry_id, fields in entries]

    async def xread_many(
        self, after: Mapping[str, str], count: int, block_ms: int
    ) -> dict[str, list[Entry]]:
        """Entries of each stream of ``after`` (key to the id to read after),
        at most ``count`` of each, in one read (one moment's view of all),
        waiting up to ``block_ms`` for one; streams with none are absent."""
        keys = list(after)
        reply = await self.call(
            "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *keys, *after.values(),
            blocks_for=block_ms / 1000,
        )  # fmt: skip
        if reply is None:  # the block ran out
            return {}
        found = cast(list[tuple[str, list[Entry]]], reply)
        return {key: [(entry_id, fields) for entry_id, fields in entries] for key, entries in found}

    async def run_script(
        self, script: str, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> object:
        """``EVALSHA``, or ``EVAL`` when Redis does not hold the script yet
        (a first call, or a Redis restarted since)."""
        sha = _sha1(script)
        if sha in self._loaded:
            try:
                return await self.call("EVALSHA", sha, len(keys), *keys, *args)
            except _NoScript:
                self._loaded.discard(sha)
        reply = await self.call("EVAL", script, len(keys), *keys, *args)
        self._loaded.add(sha)
        return reply

    async def pipeline(
        self, commands: Sequence[Sequence[str | int | float]], blocks_for: float = 0.0
    ) -> list[object]:
        """Send ``commands`` in one write and return their answers, in order:
        one round trip. A blocking first command (``blocks_for`` as for
        :meth:`call`) holds back the rest until it answers, so what follows
        it reads Redis as it is once the wait is over. A refusal of any of
        them is raised, after every answer is read."""
        request = b"".join(command(*args) for args in commands)
        async with self._lock:
            replies = await self._send_once_more_if_stale(request, blocks_for, len(commands))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise refused(self._purpose, reply)
        return replies

    async def call(self, *args: str | int | float, blocks_for: float = 0.0) -> object:
        """Send one command and return its answer. ``blocks_for``: seconds
        the command may wait inside Redis (a blocking read) before the usual
        answer timeout starts.

        A connection Redis closed while it was idle (a restart) is found
        only by using it, so a command that fails that way is sent once
        more, on a new connection. Both calls made here are safe to repeat:
        a read, and an append deduplicated by client offset."""
        request = command(*args)
        async with self._lock:
            (reply,) = await self._send_once_more_if_stale(request, blocks_for)
        if isinstance(reply, hiredis.ReplyError):
            if str(reply).startswith("NOSCRIPT"):
                raise _NoScript(str(reply))
            raise refused(self._purpose, reply)
        return reply

    async def _send_once_more_if_stale(
        self, request: bytes, blocks_for: float, replies: int = 1
    ) -> list[object]:
        """The ``replies`` answers to ``request`` (that many commands)."""
        while True:
            reused = self._stream is not None
            try:
                with trio.fail_after(blocks_for + ANSWER_TIMEOUT):
                    stream = self._stream or await self._connect()
                    return await self._exchange(stream, request, replies)
            except BaseException as exc:
                await self.aclose()  # an answer may be half read
                if reused and isinstance(exc, _CLOSED):
                    continue
                if isinstance(exc, (*_CLOSED, trio.TooSlowError)):
                    raise unreachable(self._purpose) from exc
                raise

    async def aclose(self) -> None:
        """Close the connection; a later call opens a new one."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _exchange(
        self, stream: trio.abc.Stream, request: bytes, replies: int = 1
    ) -> list[object]:
        await stream.send_all(request)
        answers: list[object] = []
        while len(answers) < replies:
            reply = self._parser.gets()
            if reply is not False:
                answers.append(reply)
                continue
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise trio.BrokenResourceError("Redis closed the connection")
            self._parser.feed(bytes(data))
        return answers

    async def _connect(self) -> trio.abc.Stream:
        address = self._address
        self._parser = hiredis.Reader(encoding="utf-8")  # nothing left of an old answer
        with trio.fail_after(CONNECT_TIMEOUT):
            stream: trio.abc.Stream
            if address.path is not None:
                stream = await trio.open_unix_socket(address.path)
            else:
                stream = await trio.open_tcp_stream(address.host, address.port)
            if address.tls is not None:
                stream = trio.SSLStream(stream, address.tls, server_hostname=address.host)
        self._stream = stream
        for setup in _login(address):
            (reply,) = await self._exchange(stream, setup)
            if isinstance(reply, hiredis.ReplyError):
                raise refused("accept the login", reply)
        return stream


@functools.cache
def _sha1(script: str) -> str:
    """The name Redis gives a script (taken once per script, not per call)."""
    return hashlib.sha1(script.encode()).hexdigest()


#: How a closed or unreachable connection shows.
_CLOSED = (OSError, trio.BrokenResourceError)


class _NoScript(StoreError):
    """Redis does not hold the script asked for (``NOSCRIPT``)."""


def _login(address: Address) -> Sequence[bytes]:
    """The commands that open a session: ``AUTH`` and ``SELECT`` as needed."""
    setup = []
    if address.password is not None:
        credentials = [address.password]
        if address.username:
            credentials.insert(0, address.username)
        setup.append(command("AUTH", *credentials))
    if address.db:
        setup.append(command("SELECT", address.db))
    return setup
