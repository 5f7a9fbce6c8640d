"""Server frames without a socket: each record encodes to the JSON that
docs/protocol.md shows, with its keys in that order, on one line."""

from __future__ import annotations

import json

import pytest

from quartchat.config import Settings
from quartchat.errors import FrameError
from quartchat.models import Message, User
from quartchat.protocol import (
    MAX_NICK,
    MAX_TEXT,
    Ack,
    ErrorFrame,
    HistoryPage,
    Limits,
    MessageFrame,
    Pong,
    PresenceNotice,
    ServerFrame,
    TypingNotice,
    Welcome,
    encode,
)

ALICE = User("u-alice", "alice")
BOB = User("u-bob", "bob")
PUBLIC = Message(1235, ALICE, None, "hi", 1764143175123)
PRIVATE = Message(1236, ALICE, BOB, "psst", 1764143175200)
DEFAULTS = Settings()
LIMITS = Limits(
    text=MAX_TEXT,
    nick=MAX_NICK,
    send_rate=DEFAULTS.send_rate,
    send_burst=DEFAULTS.send_burst,
    frame_rate=DEFAULTS.frame_rate,
    frame_burst=DEFAULTS.frame_burst,
    frame_bytes=DEFAULTS.max_frame_bytes,
    history=DEFAULTS.history_max,
)

ALICE_JSON = '{"id":"u-alice","nick":"alice"}'
BOB_JSON = '{"id":"u-bob","nick":"bob"}'
PUBLIC_BODY = f'"id":1235,"from":{ALICE_JSON},"to":null,"text":"hi","ts":1764143175123'
PRIVATE_BODY = f'"id":1236,"from":{ALICE_JSON},"to":{BOB_JSON},"text":"psst","ts":1764143175200'

DOCUMENTED: list[tuple[ServerFrame, str]] = [
    (
        Welcome(ALICE, "secret", [ALICE, BOB], 1234, "7f3a", True, LIMITS),
        '{"type":"welcome","user":' + ALICE_JSON + ',"token":"secret",'
        f'"online":[{ALICE_JSON},{BOB_JSON}],"last_id":1234,"epoch":"7f3a","recovered":true,'
        '"limits":{"text":2000,"nick":32,"send_rate":10.0,"send_burst":20,"frame_rate":50.0,'
        '"frame_burst":100,"frame_bytes":65536,"history":200}}',
    ),
    (MessageFrame(PUBLIC), '{"type":"message",' + PUBLIC_BODY + "}"),
    (MessageFrame(PRIVATE), '{"type":"message",' + PRIVATE_BODY + "}"),
    (
        HistoryPage([PUBLIC, PRIVATE], True, 1237, None),
        '{"type":"history","messages":[{' + PUBLIC_BODY + "},{" + PRIVATE_BODY + "}],"
        '"has_more":true,"before_id":1237,"with":null}',
    ),
    (
        HistoryPage([], False, None, "u-bob"),
        '{"type":"history","messages":[],"has_more":false,"before_id":null,"with":"u-bob"}',
    ),
    (
        Ack("k3j-17", 1235, 1764143175123),
        '{"type":"ack","client_offset":"k3j-17","id":1235,"ts":1764143175123}',
    ),
    (
        ErrorFrame("too_long", "text over 2000 characters", "k3j-17"),
        '{"type":"error","code":"too_long","message":"text over 2000 characters",'
        '"client_offset":"k3j-17"}',
    ),
    (
        ErrorFrame("bad_json", "frame is not valid JSON"),
        '{"type":"error","code":"bad_json","message":"frame is not valid JSON"}',
    ),
    (PresenceNotice("join", ALICE), '{"type":"presence","event":"join","user":' + ALICE_JSON + "}"),
    (PresenceNotice("leave", BOB), '{"type":"presence","event":"leave","user":' + BOB_JSON + "}"),
    (
        PresenceNotice("nick", ALICE, old_nick="al"),
        '{"type":"presence","event":"nick","user":' + ALICE_JSON + ',"old_nick":"al"}',
    ),
    (
        TypingNotice(ALICE, True, None),
        '{"type":"typing","user":' + ALICE_JSON + ',"active":true,"to":null}',
    ),
    (
        TypingNotice(ALICE, False, "u-bob"),
        '{"type":"typing","user":' + ALICE_JSON + ',"active":false,"to":"u-bob"}',
    ),
    (Pong(), '{"type":"pong"}'),
]


@pytest.mark.parametrize(("frame", "line"), DOCUMENTED)
def test_each_frame_encodes_to_the_documented_json(frame: ServerFrame, line: str) -> None:
    assert encode(frame) == line


def test_every_server_frame_type_is_covered() -> None:
    documented = {json.loads(line)["type"] for _, line in DOCUMENTED}
    assert documented == {
        "welcome",
        "message",
        "history",
        "ack",
        "error",
        "presence",
        "typing",
        "pong",
    }


def test_line_breaks_in_text_are_escaped_so_each_frame_is_one_line() -> None:
    """Clients split a WebSocket frame on ``\n``: no object may contain one.
    (U+2028 and friends are not JSON line breaks and go out as they are.)"""
    text, nick = "two\nlines\r\nand\u2028more", "new\nline"
    sender = User("u-1", nick)
    message = Message(1, sender, None, text, 0)
    lines = {
        "message": encode(MessageFrame(message)),
        "history": encode(HistoryPage([message], False, None, None)),
        "error": encode(ErrorFrame("bad_request", text, "k-1")),
        "presence": encode(PresenceNotice("nick", sender, old_nick=nick)),
    }
    for line in lines.values():
        assert "\n" not in line and "\r" not in line
    assert json.loads(lines["message"])["text"] == text
    assert json.loads(lines["history"])["messages"][0]["from"]["nick"] == nick
    assert json.loads(lines["error"])["message"] == text
    assert json.loads(lines["presence"])["old_nick"] == nick


def test_non_ascii_is_sent_as_is_not_escaped() -> None:
    nick, text = "zoë 🦊", "café, 日本語, \U0001f642"
    line = encode(MessageFrame(Message(7, User("u-1", nick), None, text, 0)))
    assert f'"nick":"{nick}"' in line
    assert f'"text":"{text}"' in line
    assert "\\u" not in line


def test_an_error_frame_is_made_from_the_frame_error() -> None:
    with_offset = FrameError("empty", "text is empty", "k-1")
    assert ErrorFrame.of(with_offset) == ErrorFrame("empty", "text is empty", "k-1")
    assert encode(ErrorFrame.of(FrameError("bad_json", "nope"))) == (
        '{"type":"error","code":"bad_json","message":"nope"}'
    )
