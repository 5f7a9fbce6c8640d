"""The bench's fast path for message lines (scripts/benchlib/lines.py) against
``json``: for every line it either declines (None) or gives exactly what
decoding the JSON gives, and it does not decline the lines a run is made of.

Lines are written by the server's own encoder, so a change of its format
shows here as lines the fast path no longer takes.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchlib.connections import WELCOME_HEAD, _token_of, count_objects, listed_online
from benchlib.lines import FrameReader, make_payload, parse_payload
from quartchat.models import Membership, Message, Role, Room, RoomKind, User
from quartchat.protocol import Ack, Limits, MessageFrame, PresenceNotice, Welcome, encode
from quartchat.protocol_rooms import DirectStanding, RoomStanding

RUN = "bench|abc123|"
OTHER_RUN = "bench|ffffff|"
READER = FrameReader(RUN)

Parsed = tuple[int, int, float] | None


def message_line(msg_id: int, text: str, nick: str = "r1-abc123", to: User | None = None) -> str:
    sender = User(id="u-1", nick=nick)
    return encode(MessageFrame(Message(id=msg_id, sender=sender, recipient=to, text=text, ts=1)))


def by_json(line: str) -> Parsed:
    """What the slow path makes of a line: decode, then read the payload."""
    obj: Any = json.loads(line)
    text = obj.get("text")
    if obj.get("type") != "message" or not isinstance(text, str) or not text.startswith(RUN):
        return None
    if not isinstance(obj.get("id"), int):
        return None
    try:
        return (obj["id"], *parse_payload(text, RUN))
    except ValueError:
        return None


def assert_agrees(line: str) -> Parsed:
    """The fast path declines the line or agrees with json; return its answer."""
    fast = READER.message(line)
    if fast is not None:
        assert fast == by_json(line), line
    frame = READER.messages(line)
    if frame is not None:
        assert frame == ([] if by_json(line) is None else [by_json(line)]), line
    return fast


def test_a_payload_reads_back_as_written() -> None:
    assert parse_payload(make_payload(RUN, 3, 7, 12345.5), RUN) == (3, 12345.5)
    assert parse_payload(make_payload(RUN, 0, 0, -2.25), RUN) == (0, -2.25)


def test_the_usual_message_line_is_read_without_json() -> None:
    line = message_line(42, make_payload(RUN, 3, 7, 12345.678901))
    assert assert_agrees(line) == (42, 3, 12345.678901)
    to = User(id="u-2", nick="r2-abc123")
    assert assert_agrees(message_line(43, make_payload(RUN, 1, 0, 5.0), to=to)) == (43, 1, 5.0)


@pytest.mark.parametrize(
    "nick",
    [
        'x","text":"bench|abc123|9|9|1.000000',
        'x\\","text":"bench|abc123|9|9|1.000000',
        "back\\slash",
        'quote"',
        "message",
        "ünïcødé ✓",
        "line\nbreak",
    ],
)
def test_a_nick_that_looks_like_a_payload_is_never_taken_for_one(nick: str) -> None:
    line = message_line(5, make_payload(RUN, 2, 1, 7.5), nick=nick)
    assert assert_agrees(line) == (5, 2, 7.5)


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        make_payload(OTHER_RUN, 1, 1, 1.0),
        RUN + "1|2",
        RUN + "1|2|3|4",
        RUN + "x|2|3.0",
        RUN + "1|2|inf",
        RUN + "1|2|nan",
        RUN + "1|2|1_0.5",
        RUN + "+1|2|3.0",
        RUN + "\u0663|2|3.0",  # ARABIC-INDIC DIGIT THREE: int() would take it
        RUN + "1|2|3.0 ",
        RUN + '1|2|3.0"',
        RUN + "1|2|3.0\\",
        RUN + "1|2|3.0\n",
        RUN + "1|2|3.0\t",
    ],
)
def test_anything_but_this_runs_exact_payload_is_declined(text: str) -> None:
    line = message_line(9, text)
    assert READER.message(line) is None
    assert READER.messages(line) is None
    assert_agrees(line)


@pytest.mark.parametrize(
    "line",
    [
        # Another key order, a string id, a text key inside the user: all declined.
        '{"id":1,"type":"message","from":{"id":"u","nick":"n"},"to":null,'
        '"text":"bench|abc123|1|0|1.0","ts":1}',
        '{"type":"message","id":"1","from":{"id":"u","nick":"n"},"to":null,'
        '"text":"bench|abc123|1|0|1.0","ts":1}',
        '{"type":"message","id":1,"from":{"id":"u","nick":"n","text":"bench|abc123|5|0|9.0"},'
        '"to":null,"text":"bench|abc123|1|0|1.0","ts":1}',
        '{"type":"message","id":1,"from":{"id":"u","nick":"n"},"to":null,'
        '"text":"bench|abc123|1|0|1.0\\u0030","ts":1}',
    ],
)
def test_an_unusual_shape_is_declined(line: str) -> None:
    assert READER.message(line) is None
    assert READER.messages(line) is None
    assert_agrees(line)


def test_a_mis_parse_would_be_caught() -> None:
    """The comparison itself fails on a wrong answer (so the tests above mean something)."""
    line = message_line(42, make_payload(RUN, 3, 7, 1.5))
    with pytest.raises(AssertionError):
        assert READER.message(line) == (42, 4, 1.5)
    wrong = FrameReader("bench|abc12")  # a prefix one character short: sender "3|..."?
    assert wrong.message(line) is None


def test_a_frame_of_messages_and_presence_is_read_at_once() -> None:
    lines = [message_line(i, make_payload(RUN, i % 3, i, i + 0.5)) for i in range(1, 6)]
    presence = '{"type":"presence","user":{"id":"u","nick":"n"},"online":true}'
    frame = "\n".join([lines[0], presence, *lines[1:]])
    assert READER.messages(frame) == [(i, i % 3, i + 0.5) for i in range(1, 6)]


@pytest.mark.parametrize(
    "other",
    [
        '{"type":"ack","client_offset":"o","id":7}',
        '{"type":"error","code":"x","message":"y","client_offset":null}',
        '{"type":"welcome","user":{"id":"u","nick":"n"}}',
        message_line(8, make_payload(OTHER_RUN, 1, 1, 1.0)),
        message_line(8, make_payload(RUN, 1, 1, 1.0), nick="ack"),
    ],
)
def test_a_frame_with_any_other_line_to_handle_goes_line_by_line(other: str) -> None:
    first = message_line(1, make_payload(RUN, 0, 0, 1.0))
    assert READER.messages(f"{first}\n{other}") is None
    assert READER.messages(f"{other}\n{first}") is None


@given(
    text=st.one_of(
        st.text(max_size=40).map(lambda t: RUN + t),
        st.tuples(
            st.integers(0, 10**6), st.integers(0, 10**6), st.floats(-1e9, 1e9, allow_nan=False)
        ).map(lambda p: make_payload(RUN, *p)),
        st.text(max_size=40),
    ),
    nick=st.text(min_size=1, max_size=20),
    msg_id=st.integers(0, 2**53),
)
def test_any_line_the_server_can_write_reads_as_json_reads_it(
    text: str, nick: str, msg_id: int
) -> None:
    line = message_line(msg_id, text, nick=nick)
    fast = assert_agrees(line)
    if by_json(line) is not None and "\\" not in json.dumps(text, ensure_ascii=False)[1:-1]:
        assert fast is not None, line  # this run's payload, no escapes: taken


# ----- the connection cases' counting (scripts/benchlib/connections.py) -----

TRICKY = User(id="u1", nick='"token":"x {"type":"presence"')


def frame_of(*frames: object) -> str:
    return "\n".join(encode(f) for f in frames)  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["join", "leave", "nick", "message", "ack"]), max_size=30))
def test_objects_are_counted_by_type_as_decoding_them_would(kinds: list[str]) -> None:
    frames: list[MessageFrame | Ack | PresenceNotice] = []
    for i, kind in enumerate(kinds):
        user = User(id=f"u{i}", nick=TRICKY.nick if i % 2 else f"n{i}")
        if kind == "message":
            frames.append(MessageFrame(Message(i + 1, user, None, "hi\n{", 5)))
        elif kind == "ack":
            frames.append(Ack(f"c{i}", i + 1, 5))
        else:
            old = "old" if kind == "nick" else None
            frames.append(PresenceNotice(kind, user, old))  # type: ignore[arg-type]
    text = frame_of(*frames)
    counted: Counter[str] = Counter()
    if text:
        count_objects(text, counted)
    decoded = Counter(json.loads(line)["type"] for line in text.split("\n") if line)
    assert +counted == decoded


def test_a_welcome_token_is_found_without_decoding_the_online_list() -> None:
    limits = Limits(2000, 32, 1, 1, 1, 1, 65536, 200)
    welcome = Welcome(TRICKY, "s3cr3t", [TRICKY] * 3, 0, "e", False, limits)
    assert _token_of(encode(welcome)) == json.loads(encode(welcome))["token"] == "s3cr3t"
    assert encode(welcome).startswith(WELCOME_HEAD)


def test_a_welcome_lists_its_online_users_and_not_its_rooms_or_conversations() -> None:
    """Protocol 1.1's welcome holds room and user objects after the online list."""
    limits = Limits(2000, 32, 1, 1, 1, 1, 65536, 200)
    rooms = [
        RoomStanding(Membership(Room(f"r{i}", f"n{i}", RoomKind.PUBLIC, ""), Role.MEMBER, 0), 0, 0)
        for i in range(3)
    ]
    direct = [DirectStanding(User(id="u-9", nick="z"), 0, 1)]
    online = [User(id=f"u{i}", nick=TRICKY.nick) for i in range(4)]
    for extra in ({}, {"rooms": rooms, "direct": direct}):
        welcome = encode(Welcome(TRICKY, "t", online, 0, "e", False, limits, **extra))  # type: ignore[arg-type]
        assert listed_online(welcome) == len(json.loads(welcome)["online"]) == 4


@pytest.mark.parametrize("room", ["general", "r0123456789ab"])
def test_a_room_message_line_is_read_without_json(room: str) -> None:
    """Protocol 1.1 adds "room" (and "mentions") after "ts": the fast path still takes it."""
    sender = User(id="u-1", nick="s0-abc123")
    text = make_payload(RUN, 2, 5, 77.5)
    plain = Message(id=9, sender=sender, recipient=None, text=text, ts=1, room=room)
    named = Message(
        id=9, sender=sender, recipient=None, text=text, ts=1, room=room, mentions=("u-2",)
    )
    for message in (plain, named):
        line = encode(MessageFrame(message, name_general=True))
        assert f'"room":"{room}"' in line
        assert assert_agrees(line) == (9, 2, 77.5)
