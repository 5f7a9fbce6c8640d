"""Property-based: arbitrary frames never crash the server, never store
anything bad, and never harm the people chatting beside the sender.

One real hypercorn (port 0) runs in a Trio loop on its own thread for the
whole module, with two bystanders online in it; Hypothesis (synchronous)
hands each example to that loop with ``trio.from_thread.run``. So one server
takes every example, and harm that builds up across examples shows too.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from hypercorn.trio import serve
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed

from chatclient import ChatClient
from conftest import hypercorn_config
from quartchat.app import create_app
from quartchat.config import Settings
from quartchat.errors import FrameError
from quartchat.protocol import (
    MAX_ID,
    MAX_TEXT,
    ErrorFrame,
    History,
    Send,
    Typing,
    clean_nick,
    encode,
    parse_frame,
)
from quartchat.text import is_blank

T = TypeVar("T")

#: pytest-trio registers Trio's PRNG (a module global) with Hypothesis; on the
#: lowest allowed versions (constraints/minimum.txt) Hypothesis then warns,
#: wrongly, that it may be garbage-collected.
pytestmark = pytest.mark.filterwarnings(
    "ignore:It looks like `register_random`:hypothesis.errors.HypothesisWarning"
)

#: Close codes docs/protocol.md gives for a client's bad input.
DOCUMENTED_CLOSES = {1003, 1007, 1008, 1009, 4001, 4003}
#: Error codes docs/protocol.md lists.
ERROR_CODES = {
    "bad_json",
    "bad_request",
    "empty",
    "too_long",
    "bad_offset",
    "bad_nick",
    "nick_taken",
    "unknown_user",
    "rate_limited",
}

# ----- strategies ------------------------------------------------------------

#: Short strings of letters (so many pass as a nick or a text) with lone
#: surrogates, controls, invisibles, look-alikes and anything else mixed in.
awkward_text = st.lists(
    st.one_of(
        st.sampled_from("aIl0\u00e9"),
        st.integers(0xD800, 0xDFFF).map(chr),
        st.sampled_from(["\x00", "\u200b", "\u3164", "\u2800", "\ufe0f", "\n", " ", "\u0430"]),
        st.characters(),
    ),
    max_size=20,
).map("".join)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, MAX_ID, MAX_ID + 1, 2**64, -(2**63) - 1, 10**30]),
    st.floats(),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | awkward_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(awkward_text, inner, max_size=4),
    max_leaves=12,
)
#: Each frame type with good values, so a broken field is reached, not masked.
GOOD_FIELDS: dict[str, dict[str, Any]] = {
    "hello": {"token": None, "nick": "fuzz", "last_id": None, "epoch": None},
    "send": {"client_offset": "f-1", "text": "hi", "to": None},
    "nick": {"nick": "fuzzer"},
    "typing": {"active": True, "to": None},
    "history": {"before_id": None, "limit": 10, "with": None},
    "ping": {},
}


@st.composite
def frame_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A frame of a known type with one of its fields replaced (most often by a
    string), sometimes also its ``type`` or an unknown field."""
    kind = draw(st.sampled_from(sorted(GOOD_FIELDS)))
    frame: dict[str, Any] = {"type": kind, **GOOD_FIELDS[kind]}
    names = sorted(GOOD_FIELDS[kind]) or ["type"]
    frame[draw(st.sampled_from(names))] = draw(awkward_text | json_values)
    for name in draw(st.lists(st.sampled_from(["type", "extra", *names]), max_size=2, unique=True)):
        frame[name] = draw(json_values)
    return frame


#: What a client can put in a text frame (a str of scalar values: JSON
#: escapes carry the lone surrogates). Half are frames of known types.
raw_frames = frame_objects().map(json.dumps) | st.one_of(
    json_values.map(json.dumps),
    st.text(max_size=60),  # mostly not JSON at all
    st.integers(1, 40_000).map(lambda depth: "[" * depth + "]" * depth),
)


# ----- the sans-IO property ---------------------------------------------------


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(
    raw=raw_frames
    | frame_objects().map(partial(json.dumps, ensure_ascii=False))
    | st.binary(max_size=60)
)
def test_parse_frame_gives_a_clean_frame_or_a_frame_error(raw: str | bytes) -> None:
    """Never another exception; what it accepts is storable and sendable."""
    try:
        frame = parse_frame(raw, history_max=200)
    except FrameError as exc:
        assert exc.code in ERROR_CODES
        encode(ErrorFrame.of(exc)).encode("utf-8")  # every error can be sent
        return
    values = {f.name: getattr(frame, f.name) for f in dataclasses.fields(frame)}
    nick = values.pop("nick", None)  # judged by clean_nick, below
    for value in values.values():
        if isinstance(value, str):
            value.encode("utf-8")  # storable and sendable: scalar values only
        if type(value) is int:
            assert 0 <= value <= MAX_ID
    if nick is not None:
        try:
            clean_nick(nick).encode("utf-8")
        except FrameError as exc:
            assert exc.code == "bad_nick"
    if isinstance(frame, Send):
        assert 0 < len(frame.text) <= MAX_TEXT
        assert frame.text == frame.text.strip() and not is_blank(frame.text)
    if isinstance(frame, History):
        assert 1 <= frame.limit <= 200
    if isinstance(frame, Typing):
        assert isinstance(frame.active, bool)


# ----- against a real server --------------------------------------------------


class ServerThread:
    """quartchat on hypercorn in a Trio loop of its own thread, with bystanders."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        # Generous rates: the bystanders chat once per example, and on a
        # fast machine examples come quicker than the default frame rate.
        self.settings = dataclasses.replace(
            Settings(),
            db_path=db_path,
            send_rate=1000.0,
            send_burst=1000,
            frame_rate=1000.0,
            frame_burst=1000,
        )
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._said = 0

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(30), "the server did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.run(self._stop)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the server did not stop"

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``afn(*args)`` in the server's loop and return its result."""
        return trio.from_thread.run(afn, *args, trio_token=self._token)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            config = hypercorn_config()
            binds = await nursery.start(
                partial(
                    serve, create_app(self.settings), config, shutdown_trigger=self._shutdown.wait
                )
            )
            self.ws_url = binds[0].replace("http://", "ws://") + "/ws"
            self.speaker, _ = await ChatClient.join(nursery, self.ws_url, nick="speaker")
            self.listener, _ = await ChatClient.join(nursery, self.ws_url, nick="listener")
            self.attacker, _ = await ChatClient.join(nursery, self.ws_url, nick="attacker")
            self.attacker_token = self.attacker.welcome["token"]
            await self.attacker.aclose()
            self._ready.set()

    async def _stop(self) -> None:
        for client in (self.speaker, self.listener):
            await client.aclose()
        self._shutdown.set()

    async def bystanders_still_chat(self) -> None:
        """The speaker's message is acked and reaches the listener."""
        self._said += 1
        offset = f"s{self._said}"
        await self.speaker.send(type="send", client_offset=offset, text=offset, to=None)
        ack = await _until(self.speaker, lambda f: f.get("client_offset") == offset)
        assert ack["type"] == "ack", ack
        got = await _until(self.listener, lambda f: f.get("id") == ack["id"])
        assert got["text"] == offset

    async def throw(self, raw: str, first: bool) -> None:
        """Send ``raw`` (as the first frame, or after a hello) on a new socket;
        it must be answered, or closed with a documented code."""
        async with trio.open_nursery() as nursery:
            attacker = await ChatClient.connect(nursery, self.ws_url)
            try:
                if not first:
                    await attacker.hello(token=self.attacker_token)
                await attacker.send_raw(raw)
                await attacker.send(type="ping")
                errors = []
                try:
                    while (frame := await attacker.recv())["type"] != "pong":
                        if frame["type"] == "error":
                            errors.append(frame)
                except ConnectionClosed as exc:
                    assert exc.reason is not None and exc.reason.code in DOCUMENTED_CLOSES, exc
                assert all(e["code"] in ERROR_CODES and e["message"] for e in errors), errors
            finally:
                await attacker.aclose()


async def _until(client: ChatClient, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read (and drop) frames until one is ``wanted``."""
    while not wanted(frame := await client.recv()):
        pass
    return frame


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(tmp_path_factory.mktemp("fuzz") / "chat.db") as server:
        yield server
    assert_stored_rows_are_clean(server.db_path)


def assert_stored_rows_are_clean(db_path: Path) -> None:
    """Every stored nick and text is valid UTF-8 within its limits."""
    with sqlite3.connect(db_path) as db:
        db.text_factory = bytes
        texts = [row[0].decode("utf-8") for row in db.execute("SELECT text FROM messages")]
        nicks = [row[0].decode("utf-8") for row in db.execute("SELECT nick FROM users")]
        nicks += [row[0].decode("utf-8") for row in db.execute("SELECT nick FROM messages")]
    assert texts, "the bystanders' messages are stored"
    for text in texts:
        assert 0 < len(text) <= MAX_TEXT and text == text.strip() and not is_blank(text)
    for nick in nicks:
        assert clean_nick(nick) == nick


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=raw_frames, first=st.booleans())
# The outages issue 6 found, always tried before the generated frames.
@example(raw=json.dumps({"type": "nick", "nick": "x\ud800"}), first=False)
@example(raw=json.dumps({"type": "send", "client_offset": "k", "text": "\udc00"}), first=False)
@example(raw=json.dumps({"type": "history", "before_id": 2**64}), first=False)
@example(raw=json.dumps({"type": "hello", "nick": "x", "last_id": 2**63}), first=True)
def test_any_frame_is_answered_and_harms_no_one(live: ServerThread, raw: str, first: bool) -> None:
    live.run(live.throw, raw, first)
    live.run(live.bystanders_still_chat)
