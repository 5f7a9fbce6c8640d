"""Moderation (protocol 1.1) without a socket: ``edit`` and the moderation
frames parsed and checked, and the frames the server sends for them
(``edited``, ``deleted``, edited and deleted messages, the notices, ``muted``
errors, the admin's welcome) encoded as docs/protocol.md shows them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quartchat.errors import BANNED, FrameError
from quartchat.models import GENERAL, Kind, Message, Role, User
from quartchat.protocol import (
    CLIENT_FAULTS,
    MAX_ID,
    MAX_NICK,
    MAX_TEXT,
    MODERATION_ERROR_CODES,
    ROOM_ERROR_CODES,
    ErrorFrame,
    HistoryPage,
    Limits,
    MessageFrame,
    Send,
    Welcome,
    encode,
    parse_frame,
)
from quartchat.protocol_moderation import (
    MAX_BAN_SECONDS,
    MAX_MUTE_SECONDS,
    MODERATION_FRAMES,
    Ban,
    BanNotice,
    Delete,
    Kick,
    Mute,
    MuteNotice,
    RoleNotice,
    SetRole,
    muted_error,
)

ALICE = User("u-alice", "alice")
BOB = User("u-bob", "bob")
MOD = User("u-mod", "mod")
ALICE_WIRE = {"id": "u-alice", "nick": "alice"}
BOB_WIRE = {"id": "u-bob", "nick": "bob"}
MOD_WIRE = {"id": "u-mod", "nick": "mod"}
LIMITS = Limits(MAX_TEXT, MAX_NICK, 10.0, 20, 50.0, 100, 65536, 200)


def parse(**fields: object) -> object:
    return parse_frame(json.dumps(fields), rooms=True)


def refused(served: bool = True, **fields: object) -> FrameError:
    """The error a frame gets; with ``served`` False, from ``parse_frame``'s
    defaults (a server that serves no 1.1 frames)."""
    with pytest.raises(FrameError) as info:
        parse_frame(json.dumps(fields), rooms=served)
    return info.value


def decoded(line: str) -> list[tuple[str, Any]]:
    """A line's members in order: equal only with the same keys in the same order."""
    assert "\n" not in line
    return list(json.loads(line).items())


# ----- edit: a send with a target ------------------------------------------------


def test_an_edit_parses_to_a_send_with_its_target() -> None:
    edit = parse(type="edit", target=1235, text="  fixed\n", client_offset="e-1")
    assert edit == Send("e-1", "fixed", None, target=1235)
    assert isinstance(edit, Send) and edit.room == GENERAL and edit.to is None
    # Nulls for room and to are as absent; the largest id is a target.
    assert parse(
        type="edit", target=MAX_ID, text="x", client_offset="e-2", room=None, to=None
    ) == Send("e-2", "x", None, target=MAX_ID)


def test_a_send_is_no_edit() -> None:
    send = parse(type="send", client_offset="k", text="hi", target=1235)
    assert send == Send("k", "hi", None) and isinstance(send, Send) and send.target == 0


def test_an_edit_text_is_checked_as_a_send_text() -> None:
    longest = parse(type="edit", target=1, text=f"\n{'é' * MAX_TEXT}\n", client_offset="e")
    assert isinstance(longest, Send) and longest.text == "é" * MAX_TEXT
    pair = parse_frame(
        '{"type":"edit","target":1,"text":"\\ud83d\\ude00","client_offset":"e"}', rooms=True
    )
    assert pair == Send("e", "\U0001f600", None, target=1)


BAD_EDITS: list[tuple[dict[str, Any], str]] = [
    # the target
    ({"text": "x"}, "bad_request"),
    ({"target": None, "text": "x"}, "bad_request"),
    ({"target": 0, "text": "x"}, "bad_request"),
    ({"target": -1, "text": "x"}, "bad_request"),
    ({"target": MAX_ID + 1, "text": "x"}, "bad_request"),
    ({"target": 10**100, "text": "x"}, "bad_request"),
    ({"target": 12.0, "text": "x"}, "bad_request"),
    ({"target": True, "text": "x"}, "bad_request"),
    ({"target": "12", "text": "x"}, "bad_request"),
    ({"target": [12], "text": "x"}, "bad_request"),
    # the text, as a send's
    ({"target": 5}, "bad_request"),
    ({"target": 5, "text": None}, "bad_request"),
    ({"target": 5, "text": 42}, "bad_request"),
    ({"target": 5, "text": ""}, "empty"),
    ({"target": 5, "text": " \n\t "}, "empty"),
    ({"target": 5, "text": "\u200b\u2060"}, "empty"),
    ({"target": 5, "text": "x" * (MAX_TEXT + 1)}, "too_long"),
    ({"target": 5, "text": "a\ud800b"}, "bad_request"),
    ({"target": 5, "text": "a\x00b"}, "bad_request"),
    # no room and no recipient: the target's are used
    ({"target": 5, "text": "x", "room": "r5k2"}, "bad_request"),
    ({"target": 5, "text": "x", "room": GENERAL}, "bad_request"),
    ({"target": 5, "text": "x", "to": "u-bob"}, "bad_request"),
]


@pytest.mark.parametrize(("fields", "code"), BAD_EDITS, ids=[repr(f)[:50] for f, _ in BAD_EDITS])
def test_a_bad_edit_gets_its_code_with_the_client_offset(fields: dict[str, Any], code: str) -> None:
    error = refused(type="edit", client_offset="e-9", **fields)
    assert (error.code, error.client_offset) == (code, "e-9")
    assert json.loads(encode(ErrorFrame.of(error)))["client_offset"] == "e-9"


@pytest.mark.parametrize("offset", [None, "", "has space", "x" * 65, 7, "e\ud800"])
def test_an_edit_with_a_bad_offset_is_a_bad_offset(offset: object) -> None:
    error = refused(type="edit", target=5, text="x", client_offset=offset)
    assert error.code == "bad_offset"


def test_without_rooms_served_an_edit_is_an_unknown_type() -> None:
    error = refused(served=False, type="edit", target=5, text="x", client_offset="e")
    assert error.code == "bad_request" and "unknown frame type" in error.message


# ----- the moderation frames -------------------------------------------------------

HAPPY: list[tuple[dict[str, Any], object]] = [
    ({"type": "delete", "target": 1235}, Delete(1235)),
    ({"type": "delete", "target": MAX_ID}, Delete(MAX_ID)),
    (
        {"type": "role", "room": "r5k2", "user": "u-bob", "role": "moderator"},
        SetRole("r5k2", "u-bob", Role.MODERATOR),
    ),
    (
        {"type": "role", "room": "r5k2", "user": "u-bob", "role": "member"},
        SetRole("r5k2", "u-bob", Role.MEMBER),
    ),
    ({"type": "kick", "room": "r5k2", "user": "u-bob"}, Kick("r5k2", "u-bob")),
    # general is the server's to refuse (forbidden), not the parser's
    ({"type": "kick", "room": GENERAL, "user": "u-bob"}, Kick(GENERAL, "u-bob")),
    (
        {"type": "mute", "room": "r5k2", "user": "u-bob", "seconds": 600},
        Mute("r5k2", "u-bob", 600),
    ),
    ({"type": "mute", "room": None, "user": "u-bob", "seconds": 0}, Mute(None, "u-bob", 0)),
    (
        {"type": "mute", "room": None, "user": "u-bob", "seconds": MAX_MUTE_SECONDS},
        Mute(None, "u-bob", 31_536_000),
    ),
    ({"type": "ban", "user": "u-bob", "seconds": None}, Ban("u-bob", None)),
    ({"type": "ban", "user": "u-bob", "seconds": 0}, Ban("u-bob", 0)),
    ({"type": "ban", "user": "u-bob", "seconds": 3600}, Ban("u-bob", 3600)),
    (
        {"type": "ban", "user": "u-bob", "seconds": MAX_BAN_SECONDS},
        Ban("u-bob", 10 * 31_536_000),
    ),
]


@pytest.mark.parametrize(("fields", "record"), HAPPY, ids=[repr(f)[:50] for f, _ in HAPPY])
def test_each_moderation_frame_parses_to_its_record(fields: dict[str, Any], record: object) -> None:
    parsed = parse(**fields)
    assert parsed == record and isinstance(parsed, MODERATION_FRAMES)
    assert parse(**fields, ref="req-7") == dataclasses.replace(record, ref="req-7")  # type: ignore[type-var]
    assert parse(**fields, ref="é" * 64) == dataclasses.replace(record, ref="é" * 64)  # type: ignore[type-var]


@pytest.mark.parametrize(("fields", "record"), HAPPY, ids=[repr(f)[:50] for f, _ in HAPPY])
def test_without_rooms_served_the_moderation_frames_are_unknown_types(
    fields: dict[str, Any], record: object
) -> None:
    error = refused(served=False, **fields)
    assert error.code == "bad_request" and "unknown frame type" in error.message


BAD_IDS = [None, "", 7, True, ["r5k2"], {"id": "r"}, "r" * 129, "r\ud800"]
BAD: list[tuple[dict[str, Any], str]] = [
    # delete: a positive id, required
    ({"type": "delete"}, "bad_request"),
    *[
        ({"type": "delete", "target": target}, "bad_request")
        for target in (None, 0, -5, MAX_ID + 1, 10**100, 5.0, 1.5, True, False, "5", [5])
    ],
    # the ids of rooms and users, wherever one is required
    *[
        ({"type": kind, **{k: v for k, v in good.items() if k != name}, **absent}, "bad_request")
        for kind, good in (
            ("role", {"room": "r5k2", "user": "u-bob", "role": "member"}),
            ("kick", {"room": "r5k2", "user": "u-bob"}),
            ("mute", {"room": "r5k2", "user": "u-bob", "seconds": 60}),
            ("ban", {"user": "u-bob", "seconds": 60}),
        )
        for name in good
        if name in ("room", "user")
        for absent in ({}, *({name: bad} for bad in BAD_IDS))
        if not (kind == "mute" and name == "room" and absent == {name: None})
    ],
    # role: moderator or member, nothing else (ownership is not handed over)
    *[
        ({"type": "role", "room": "r5k2", "user": "u-bob", **role}, "bad_request")
        for role in (
            {},
            {"role": None},
            {"role": "owner"},
            {"role": "admin"},
            {"role": "MODERATOR"},
            {"role": " moderator"},
            {"role": 1},
            {"role": ["moderator"]},
            {"role": {"moderator": True}},
        )
    ],
    # mute: seconds an integer from 0 to a year, required
    *[
        ({"type": "mute", "room": "r5k2", "user": "u-bob", **seconds}, "bad_request")
        for seconds in (
            {},
            {"seconds": None},
            {"seconds": -1},
            {"seconds": MAX_MUTE_SECONDS + 1},
            {"seconds": 10**100},
            {"seconds": 600.0},
            {"seconds": 1e3},
            {"seconds": True},
            {"seconds": "600"},
        )
    ],
    # ban: seconds null or an integer from 0 to ten years, required
    *[
        ({"type": "ban", "user": "u-bob", **seconds}, "bad_request")
        for seconds in (
            {},
            {"seconds": -1},
            {"seconds": MAX_BAN_SECONDS + 1},
            {"seconds": MAX_ID},
            {"seconds": 3600.0},
            {"seconds": False},
            {"seconds": "3600"},
            {"seconds": [None]},
        )
    ],
]


@pytest.mark.parametrize(("fields", "code"), BAD, ids=[repr(f)[:60] for f, _ in BAD])
def test_bad_values_get_their_code_and_echo_the_ref(fields: dict[str, Any], code: str) -> None:
    assert refused(**fields).ref is None
    error = refused(**fields, ref="req-9")
    assert (error.code, error.ref) == (code, "req-9")
    assert encode(ErrorFrame.of(error)).endswith(',"ref":"req-9"}')


def test_a_mute_without_its_room_key_is_refused_rather_than_chat_wide() -> None:
    """An absent room is no null: a mute meant for a room never lands everywhere."""
    assert refused(type="mute", user="u-bob", seconds=60).code == "bad_request"
    assert parse(type="mute", room=None, user="u-bob", seconds=60) == Mute(None, "u-bob", 60)


def test_a_ban_without_seconds_is_refused_rather_than_for_good() -> None:
    assert refused(type="ban", user="u-bob").code == "bad_request"
    assert parse(type="ban", user="u-bob", seconds=None) == Ban("u-bob", None)


@pytest.mark.parametrize("ref", [7, True, ["a"], {"a": 1}, "x" * 65, "a\ud800"])
def test_a_bad_ref_is_a_bad_request_that_echoes_nothing(ref: object) -> None:
    for fields in (frame for frame, _ in HAPPY):
        error = refused(**fields, ref=ref)
        assert (error.code, error.ref) == ("bad_request", None)


# ----- edited and deleted: entries of the log --------------------------------------

EDIT = Message(1240, ALICE, None, "fixed", 20, room="r5k2", kind=Kind.EDIT, target=1235)
DELETE = Message(1241, ALICE, None, "", 21, room="r5k2", kind=Kind.DELETE, target=1235, by=MOD)


@pytest.mark.parametrize("name_general", [False, True])
def test_an_edit_entry_is_an_edited_frame(name_general: bool) -> None:
    assert decoded(encode(MessageFrame(EDIT, name_general))) == [
        ("type", "edited"),
        ("id", 1240),
        ("target", 1235),
        ("text", "fixed"),
        ("room", "r5k2"),
        ("ts", 20),
        ("from", ALICE_WIRE),
        ("to", None),
    ]
    # general is named (a 1.1 frame), a private one has room null and a `to`
    in_general = dataclasses.replace(EDIT, room=None)
    assert json.loads(encode(MessageFrame(in_general, name_general)))["room"] == GENERAL
    private = Message(1240, ALICE, BOB, "fixed", 20, kind=Kind.EDIT, target=1235)
    wire = json.loads(encode(MessageFrame(private, name_general)))
    assert (wire["room"], wire["to"]) == (None, BOB_WIRE)


@pytest.mark.parametrize("name_general", [False, True])
def test_a_delete_entry_is_a_deleted_frame_naming_who_deleted(name_general: bool) -> None:
    assert decoded(encode(MessageFrame(DELETE, name_general))) == [
        ("type", "deleted"),
        ("id", 1241),
        ("target", 1235),
        ("room", "r5k2"),
        ("by", MOD_WIRE),
        ("ts", 21),
        ("from", ALICE_WIRE),
        ("to", None),
    ]
    private = Message(1241, ALICE, BOB, "", 21, kind=Kind.DELETE, target=1235, by=ALICE)
    wire = json.loads(encode(MessageFrame(private, name_general)))
    assert (wire["room"], wire["to"], wire["by"]) == (None, BOB_WIRE, ALICE_WIRE)
    assert "text" not in wire


def test_an_edit_of_a_message_deleted_since_carries_no_old_text() -> None:
    """In a replay, an edit entry whose target is gone comes with text ""."""
    gone = dataclasses.replace(EDIT, text="")
    assert json.loads(encode(MessageFrame(gone)))["text"] == ""


def test_an_edited_message_carries_edited_ts_after_its_other_fields() -> None:
    edited = Message(1235, ALICE, None, "fixed @bob", 17, "r5k2", ("u-bob",), edited_ts=20)
    assert decoded(encode(MessageFrame(edited))) == [
        ("type", "message"),
        ("id", 1235),
        ("from", ALICE_WIRE),
        ("to", None),
        ("text", "fixed @bob"),
        ("ts", 17),
        ("room", "r5k2"),
        ("mentions", ["u-bob"]),
        ("edited_ts", 20),
    ]
    page = json.loads(encode(HistoryPage([edited], False, None, None, "r5k2")))
    assert page["messages"][0]["edited_ts"] == 20


def test_a_deleted_message_has_no_text_and_nothing_that_came_of_it() -> None:
    deleted = Message(
        1235, ALICE, None, "", 17, "r5k2", ("u-bob",), edited_ts=20, deleted=True, by=MOD
    )
    entry = [
        ("id", 1235),
        ("deleted", True),
        ("from", ALICE_WIRE),
        ("to", None),
        ("ts", 17),
        ("room", "r5k2"),
    ]
    assert decoded(encode(MessageFrame(deleted))) == [("type", "message"), *entry]
    page = json.loads(encode(HistoryPage([deleted], False, None, None, "r5k2")))
    assert list(page["messages"][0].items()) == entry
    # In general, named only where 1.1 names it, as for any message.
    in_general = dataclasses.replace(deleted, room=None)
    assert "room" not in json.loads(encode(MessageFrame(in_general)))
    assert json.loads(encode(MessageFrame(in_general, name_general=True)))["room"] == GENERAL


def test_a_history_page_holds_messages_alone() -> None:
    message = Message(1235, ALICE, None, "hi", 17, "r5k2")
    page = json.loads(encode(HistoryPage([message, EDIT, DELETE], False, None, None, "r5k2")))
    assert [entry["id"] for entry in page["messages"]] == [1235]


def test_a_message_never_edited_nor_deleted_keeps_version_1s_bytes() -> None:
    assert encode(MessageFrame(Message(1235, ALICE, None, "hi", 17))) == (
        '{"type":"message","id":1235,"from":{"id":"u-alice","nick":"alice"},'
        '"to":null,"text":"hi","ts":17}'
    )


# ----- notices ---------------------------------------------------------------------

NOTICES: list[tuple[Any, dict[str, Any]]] = [
    (
        RoleNotice("r5k2", BOB, Role.MODERATOR, ALICE),
        {"type": "role", "room": "r5k2", "user": BOB_WIRE, "role": "moderator", "by": ALICE_WIRE},
    ),
    (
        RoleNotice("r5k2", BOB, Role.MEMBER, ALICE, ref="r1"),
        {
            "type": "role",
            "room": "r5k2",
            "user": BOB_WIRE,
            "role": "member",
            "by": ALICE_WIRE,
            "ref": "r1",
        },
    ),
    (
        MuteNotice("r5k2", BOB, 1_764_143_775_123, MOD, ref="m1"),
        {
            "type": "mute",
            "room": "r5k2",
            "user": BOB_WIRE,
            "until": 1_764_143_775_123,
            "by": MOD_WIRE,
            "ref": "m1",
        },
    ),
    (
        MuteNotice(None, BOB, 0, MOD),
        {"type": "mute", "room": None, "user": BOB_WIRE, "until": 0, "by": MOD_WIRE},
    ),
    (
        BanNotice(BOB, None, MOD, ref="b1"),
        {"type": "ban", "user": BOB_WIRE, "until": None, "by": MOD_WIRE, "ref": "b1"},
    ),
    (
        BanNotice(BOB, 0, MOD),
        {"type": "ban", "user": BOB_WIRE, "until": 0, "by": MOD_WIRE},
    ),
]


@pytest.mark.parametrize(("frame", "wire"), NOTICES, ids=[repr(w)[:40] for _, w in NOTICES])
def test_each_notice_encodes_as_the_docs_show(frame: Any, wire: dict[str, Any]) -> None:
    assert decoded(encode(frame)) == list(wire.items())


# ----- errors, close code, welcome ---------------------------------------------------


def test_a_muted_error_says_until_when() -> None:
    error = muted_error("r5k2", 1_764_143_775_123, "k-1")
    assert (error.code, error.client_offset, error.until) == ("muted", "k-1", 1_764_143_775_123)
    assert error.message == "muted in this room until 2025-11-26 07:56:15 UTC"
    assert decoded(encode(ErrorFrame.of(error))) == [
        ("type", "error"),
        ("code", "muted"),
        ("message", "muted in this room until 2025-11-26 07:56:15 UTC"),
        ("client_offset", "k-1"),
        ("until", 1_764_143_775_123),
    ]
    for_good = muted_error(None, None, None)
    assert for_good.message == "muted everywhere for good"
    assert decoded(encode(ErrorFrame.of(for_good)))[-1] == ("until", None)
    # Any time at all can be said, up to the largest id.
    assert "9999" in muted_error(None, MAX_ID, None).message


def test_until_shows_on_muted_errors_alone() -> None:
    """Every other error keeps the keys it had."""
    other = ErrorFrame("rate_limited", "slow down", "k", until=5)
    assert "until" not in json.loads(encode(other))
    assert encode(ErrorFrame.of(FrameError("empty", "text is empty", "k"))) == (
        '{"type":"error","code":"empty","message":"text is empty","client_offset":"k"}'
    )


def test_the_moderation_codes_are_no_strikes() -> None:
    """A mute is someone else's doing; a message deleted a moment ago meets
    an honest page's edit or delete on its way."""
    assert {"muted", "unknown_message"} == MODERATION_ERROR_CODES
    assert not MODERATION_ERROR_CODES & CLIENT_FAULTS
    assert BANNED == 4009


def test_the_welcome_says_admin_only_for_an_admin() -> None:
    plain = Welcome(ALICE, "secret", [ALICE], 1234, "7f3a", True, LIMITS)
    assert encode(dataclasses.replace(plain, admin=False)) == encode(plain)
    assert "admin" not in encode(plain)
    admin = dataclasses.replace(plain, token=None, rooms=[], direct=[], admin=True)
    line = encode(admin)
    assert json.loads(line) == admin.wire()
    assert [key for key, _ in decoded(line)][-4:] == ["limits", "rooms", "direct", "admin"]
    assert json.loads(line)["admin"] is True


# ----- fuzz: nothing but FrameError ----------------------------------------------------

FIELDS = ["target", "text", "room", "user", "role", "seconds", "ref", "to", "client_offset"]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(
        [MAX_ID, MAX_ID + 1, -1, 0, 1, MAX_MUTE_SECONDS, MAX_BAN_SECONDS + 1, 10**30, 600.0]
    )
    | st.floats()
    | st.text(max_size=80)
    | st.sampled_from(
        ["general", "r5k2", "u-bob", "moderator", "member", "owner", "k-1", "\ud800", "x" * 129]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
moderation_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["edit", "delete", "role", "kick", "mute", "ban", "send"])},
    optional=dict.fromkeys(FIELDS, values),
)
DOCUMENTED_CODES = CLIENT_FAULTS | ROOM_ERROR_CODES | MODERATION_ERROR_CODES


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(frame=moderation_frames, ascii_only=st.booleans())
def test_no_frame_makes_the_parser_raise_anything_but_frame_error(
    frame: dict[str, Any], ascii_only: bool
) -> None:
    raw = json.dumps(frame, ensure_ascii=ascii_only)
    try:
        parsed = parse_frame(raw, rooms=True)
    except FrameError as exc:
        assert exc.code in DOCUMENTED_CODES
        encode(ErrorFrame.of(exc)).encode("utf-8")  # every error can be sent
        return
    for field in dataclasses.fields(parsed):
        value = getattr(parsed, field.name)
        if isinstance(value, str):
            value.encode("utf-8")  # storable and sendable
        if type(value) is int:
            assert 0 <= value <= MAX_ID
    match parsed:
        case Send():
            assert 0 < len(parsed.text) <= MAX_TEXT
            assert (parsed.target > 0) == (frame["type"] == "edit")
            if parsed.target:
                assert parsed.to is None and parsed.room == GENERAL
        case Delete():
            assert parsed.target >= 1
        case SetRole():
            assert parsed.role in (Role.MODERATOR, Role.MEMBER)
        case Mute():
            assert 0 <= parsed.seconds <= MAX_MUTE_SECONDS and "room" in frame
        case Ban():
            assert parsed.seconds is None or 0 <= parsed.seconds <= MAX_BAN_SECONDS
            assert "seconds" in frame
