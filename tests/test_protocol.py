"""Protocol v1 parsing and validation, with no socket: the sans-IO layer."""

from __future__ import annotations

import json

import pytest

from quartchat.errors import FrameError
from quartchat.protocol import (
    Hello,
    History,
    Nick,
    Ping,
    Send,
    Typing,
    clean_nick,
    parse_frame,
)


def frame(**fields: object) -> str:
    return json.dumps(fields)


def refused(raw: str) -> FrameError:
    with pytest.raises(FrameError) as info:
        parse_frame(raw)
    return info.value


def test_hello_fields_are_read() -> None:
    parsed = parse_frame(frame(type="hello", token="t", nick="al", last_id=7, epoch="e"))
    assert parsed == Hello(token="t", nick="al", last_id=7, epoch="e")


def test_hello_with_nulls_is_a_first_visit() -> None:
    parsed = parse_frame(frame(type="hello", token=None, nick=None, last_id=None, epoch=None))
    assert parsed == Hello(None, None, None, None)


def test_every_client_frame_type_parses() -> None:
    assert parse_frame(frame(type="send", client_offset="a-1", text="hi", to=None)) == Send(
        "a-1", "hi", None
    )
    assert parse_frame(frame(type="nick", nick="bob")) == Nick("bob")
    assert parse_frame(frame(type="typing", active=True, to="u1")) == Typing(True, "u1")
    assert parse_frame(frame(type="history", before_id=10, limit=20)) == History(10, 20, None)
    assert parse_frame(frame(type="ping")) == Ping()


def test_history_limit_is_capped_and_defaulted() -> None:
    assert parse_frame(frame(type="history", before_id=None, limit=10_000)) == History(
        None, 200, None
    )
    assert parse_frame(frame(type="history"), history_max=200) == History(None, 50, None)


def test_ids_and_limits_span_exactly_64_bits() -> None:
    top = 2**63 - 1
    assert parse_frame(frame(type="hello", last_id=top)) == Hello(None, None, top, None)
    assert parse_frame(frame(type="history", before_id=top, limit=top)) == History(top, 200, None)
    assert parse_frame(frame(type="history", before_id=0, limit=1)) == History(0, 1, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "hello", "last_id": 2**63},
        {"type": "hello", "last_id": -1},
        {"type": "history", "before_id": 2**63},
        {"type": "history", "before_id": -(2**63)},
        {"type": "history", "before_id": 10**100},
        {"type": "history", "limit": 0},
        {"type": "history", "limit": -1},
        {"type": "history", "limit": 2**64},
    ],
)
def test_numbers_out_of_range_are_bad_requests(fields: dict[str, object]) -> None:
    assert refused(json.dumps(fields)).code == "bad_request"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "send", "client_offset": "k", "text": "a\ud800b"}, "bad_request"),
        ({"type": "send", "client_offset": "k", "text": "hi", "to": "\udc00"}, "bad_request"),
        ({"type": "hello", "token": "\ud800"}, "bad_request"),
        ({"type": "hello", "epoch": "\ud800"}, "bad_request"),
        ({"type": "typing", "active": True, "to": "\ud800"}, "bad_request"),
        ({"type": "history", "with": "\ud800"}, "bad_request"),
    ],
)
def test_lone_surrogates_are_refused_in_every_field(fields: dict[str, object], code: str) -> None:
    error = refused(json.dumps(fields))
    assert error.code == code
    assert error.client_offset == fields.get("client_offset")


def test_a_surrogate_pair_is_one_valid_character() -> None:
    parsed = parse_frame('{"type":"send","client_offset":"k","text":"\\ud83d\\ude00"}')
    assert parsed == Send("k", "\U0001f600", None)


def test_a_nick_with_a_lone_surrogate_is_a_bad_nick() -> None:
    wanted = parse_frame(json.dumps({"type": "nick", "nick": "x\ud800"}))
    assert isinstance(wanted, Nick)
    with pytest.raises(FrameError) as info:
        clean_nick(wanted.nick)
    assert info.value.code == "bad_nick"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_request"),
        ('"hello"', "bad_request"),
        (frame(kind="send"), "bad_request"),
        (frame(type=5), "bad_request"),
        (frame(type="shout"), "bad_request"),
        (frame(type="hello", token=5), "bad_request"),
        (frame(type="hello", last_id="12"), "bad_request"),
        (frame(type="hello", last_id=True), "bad_request"),
        (frame(type="typing", active="yes"), "bad_request"),
        (frame(type="nick"), "bad_request"),
        (frame(type="history", before_id=1.5), "bad_request"),
    ],
)
def test_malformed_frames_get_their_code(raw: str, code: str) -> None:
    assert refused(raw).code == code


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"client_offset": "", "text": "hi"}, "bad_offset"),
        ({"client_offset": "x" * 65, "text": "hi"}, "bad_offset"),
        ({"client_offset": "has space", "text": "hi"}, "bad_offset"),
        ({"client_offset": 12, "text": "hi"}, "bad_offset"),
        ({"client_offset": "ok", "text": ""}, "empty"),
        ({"client_offset": "ok", "text": " \n\t "}, "empty"),
        ({"client_offset": "ok", "text": "x" * 2001}, "too_long"),
        ({"client_offset": "ok", "text": 42}, "bad_request"),
        ({"client_offset": "ok", "text": "hi", "to": 3}, "bad_request"),
    ],
)
def test_bad_sends_are_refused_with_the_offset(fields: dict[str, object], code: str) -> None:
    error = refused(frame(type="send", **fields))
    assert error.code == code
    offset = fields["client_offset"]
    if isinstance(offset, str) and 0 < len(offset) <= 64:
        assert error.client_offset == offset


def test_text_is_trimmed_of_leading_and_trailing_whitespace() -> None:
    parsed = parse_frame(frame(type="send", client_offset="t", text="\n \n  two\n\nlines \t\n\n"))
    assert parsed == Send("t", "two\n\nlines", None)


@pytest.mark.parametrize(
    "text",
    [
        "\u200b",
        "\u200c\u200d",
        "\u200e\u200f",
        "\u2066\u2069",
        "\u2060 \ufeff",
        "\u3164",
        " \u034f\n",
    ],
    ids=["zwsp", "zwnj-zwj", "lrm-rlm", "isolates", "word-joiner-bom", "filler", "cgj"],
)
def test_text_of_invisible_characters_only_is_empty(text: str) -> None:
    error = refused(frame(type="send", client_offset="t", text=text))
    assert (error.code, error.client_offset) == ("empty", "t")


def test_the_length_limit_counts_the_trimmed_text() -> None:
    parsed = parse_frame(frame(type="send", client_offset="t", text=f"\n{'x' * 2000}\n\n"))
    assert isinstance(parsed, Send)
    assert parsed.text == "x" * 2000


def test_text_length_counts_code_points_not_bytes() -> None:
    parsed = parse_frame(frame(type="send", client_offset="e", text="é" * 2000))
    assert isinstance(parsed, Send)
    assert len(parsed.text) == 2000


def test_nicks_are_trimmed_and_checked() -> None:
    assert clean_nick("  alice  ") == "alice"
    assert clean_nick("x" * 32) == "x" * 32
    for bad in ["", "   ", "x" * 33, "bad\x07bell", "new\nline", "zero\u200bwidth"]:
        with pytest.raises(FrameError) as info:
            clean_nick(bad)
        assert info.value.code == "bad_nick"
