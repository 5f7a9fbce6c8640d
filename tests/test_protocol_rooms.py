"""Rooms (protocol 1.1) without a socket: the rooms' client frames parsed and
checked, the additions to version 1's frames, and the server frames encoded
as ../shared/protocol.md (Additions, Rooms) shows them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quartchat.errors import FrameError
from quartchat.models import (
    GENERAL,
    Draft,
    ListedRoom,
    Membership,
    Message,
    Role,
    Room,
    RoomKind,
    User,
)
from quartchat.protocol import (
    CLIENT_FAULTS,
    MAX_ID,
    MAX_NICK,
    MAX_TEXT,
    ROOM_ERROR_CODES,
    ErrorFrame,
    History,
    HistoryPage,
    Limits,
    MessageFrame,
    Send,
    Typing,
    TypingNotice,
    Welcome,
    encode,
    parse_frame,
)
from quartchat.protocol_rooms import (
    MAX_ROOM_NAME,
    MAX_TOPIC,
    DirectStanding,
    MarkRead,
    MemberNotice,
    MembersAnswer,
    MembersRequest,
    ReadNotice,
    RoomCreate,
    RoomInvite,
    RoomJoin,
    RoomLeave,
    RoomMemberEntry,
    RoomsAnswer,
    RoomsRequest,
    RoomStanding,
    clean_room_name,
)

ALICE = User("u-alice", "alice")
BOB = User("u-bob", "bob")
DESIGN = Room("r5k2", "design", RoomKind.PUBLIC, "")
LIMITS = Limits(MAX_TEXT, MAX_NICK, 10.0, 20, 50.0, 100, 65536, 200)


def parse(**fields: object) -> object:
    return parse_frame(json.dumps(fields), rooms=True)


def refused(served: bool = True, **fields: object) -> FrameError:
    """The error a frame gets; with ``served`` False, from ``parse_frame``'s
    defaults, as the session calls it until the hub serves rooms."""
    with pytest.raises(FrameError) as info:
        if served:
            parse_frame(json.dumps(fields), rooms=True)
        else:
            parse_frame(json.dumps(fields))
    return info.value


# ----- client frames: the happy paths -----------------------------------------

HAPPY: list[tuple[dict[str, Any], object]] = [
    (
        {"type": "room_create", "name": "design", "kind": "public", "topic": ""},
        RoomCreate("design", RoomKind.PUBLIC, ""),
    ),
    (
        {"type": "room_create", "name": "ops", "kind": "private", "topic": " on call "},
        RoomCreate("ops", RoomKind.PRIVATE, "on call"),
    ),
    (
        {"type": "room_create", "name": "ops", "kind": "private"},
        RoomCreate("ops", RoomKind.PRIVATE, ""),
    ),
    ({"type": "room_join", "room": "r5k2"}, RoomJoin("r5k2")),
    ({"type": "room_leave", "room": "r5k2"}, RoomLeave("r5k2")),
    ({"type": "room_invite", "room": "r5k2", "user": "u-bob"}, RoomInvite("r5k2", "u-bob")),
    ({"type": "rooms"}, RoomsRequest()),
    ({"type": "members", "room": "r5k2"}, MembersRequest("r5k2")),
    ({"type": "read", "room": "r5k2", "id": 1234}, MarkRead(1234, "r5k2", None)),
    ({"type": "read", "with": "u-bob", "id": 1234}, MarkRead(1234, None, "u-bob")),
    ({"type": "read", "room": None, "with": "u-bob", "id": 0}, MarkRead(0, None, "u-bob")),
    ({"type": "read", "room": "general", "id": MAX_ID}, MarkRead(MAX_ID, GENERAL, None)),
]


@pytest.mark.parametrize(("fields", "record"), HAPPY, ids=[f["type"] for f, _ in HAPPY])
def test_each_rooms_frame_parses_to_its_record(fields: dict[str, Any], record: object) -> None:
    assert parse(**fields) == record


@pytest.mark.parametrize(("fields", "record"), HAPPY, ids=[f["type"] for f, _ in HAPPY])
def test_each_rooms_frame_carries_its_ref(fields: dict[str, Any], record: object) -> None:
    assert parse(**fields, ref="req-7") == dataclasses.replace(record, ref="req-7")  # type: ignore[type-var]
    assert parse(**fields, ref="") == dataclasses.replace(record, ref="")  # type: ignore[type-var]
    assert parse(**fields, ref="é" * 64) == dataclasses.replace(record, ref="é" * 64)  # type: ignore[type-var]


@pytest.mark.parametrize(("fields", "record"), HAPPY, ids=[f["type"] for f, _ in HAPPY])
def test_without_rooms_served_the_rooms_frames_are_unknown_types(
    fields: dict[str, Any], record: object
) -> None:
    """Until the hub serves rooms, parse_frame's default answers them as
    version 1 answers any unknown type."""
    error = refused(served=False, **fields)
    assert error.code == "bad_request" and "unknown frame type" in error.message


# ----- client frames: bad values -----------------------------------------------

BAD: list[tuple[dict[str, Any], str]] = [
    # room ids, wherever one is asked for
    *[
        (frame, "bad_request")
        for kind, extra in (
            ("room_join", {}),
            ("room_leave", {}),
            ("room_invite", {"user": "u-bob"}),
            ("members", {}),
        )
        for frame in (
            {"type": kind, **extra},
            {"type": kind, "room": None, **extra},
            {"type": kind, "room": "", **extra},
            {"type": kind, "room": 7, **extra},
            {"type": kind, "room": ["r5k2"], **extra},
            {"type": kind, "room": "r" * 129, **extra},
            {"type": kind, "room": "r\ud800", **extra},
        )
    ],
    # the invited user's id
    ({"type": "room_invite", "room": "r5k2"}, "bad_request"),
    ({"type": "room_invite", "room": "r5k2", "user": ""}, "bad_request"),
    ({"type": "room_invite", "room": "r5k2", "user": 12}, "bad_request"),
    ({"type": "room_invite", "room": "r5k2", "user": "\udc00"}, "bad_request"),
    # names
    ({"type": "room_create", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": None, "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": " \t ", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "x" * 65, "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "bell\x07", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "zero\u200bwidth", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "two\nlines", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "!!! ...", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "\u3164", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": "de\ud800sign", "kind": "public"}, "bad_room_name"),
    ({"type": "room_create", "name": 5, "kind": "public"}, "bad_request"),
    ({"type": "room_create", "name": "x" * 1001, "kind": "public"}, "bad_request"),
    # kinds
    ({"type": "room_create", "name": "design"}, "bad_request"),
    ({"type": "room_create", "name": "design", "kind": None}, "bad_request"),
    ({"type": "room_create", "name": "design", "kind": "secret"}, "bad_request"),
    ({"type": "room_create", "name": "design", "kind": "PUBLIC"}, "bad_request"),
    ({"type": "room_create", "name": "design", "kind": True}, "bad_request"),
    # topics
    ({"type": "room_create", "name": "design", "kind": "public", "topic": 3}, "bad_request"),
    (
        {"type": "room_create", "name": "design", "kind": "public", "topic": "x" * 257},
        "bad_request",
    ),
    ({"type": "room_create", "name": "design", "kind": "public", "topic": "a\nb"}, "bad_request"),
    (
        {"type": "room_create", "name": "design", "kind": "public", "topic": "a\u2028b"},
        "bad_request",
    ),
    ({"type": "room_create", "name": "design", "kind": "public", "topic": "\ud800"}, "bad_request"),
    # read markers
    ({"type": "read", "id": 5}, "bad_request"),
    ({"type": "read", "room": None, "with": None, "id": 5}, "bad_request"),
    ({"type": "read", "room": "r5k2", "with": "u-bob", "id": 5}, "bad_request"),
    ({"type": "read", "room": "r5k2"}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": None}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": -1}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": 2**63}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": 10**100}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": 1.5}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": True}, "bad_request"),
    ({"type": "read", "room": "r5k2", "id": "12"}, "bad_request"),
    ({"type": "read", "with": 4, "id": 1}, "bad_request"),
    ({"type": "read", "with": "\ud800", "id": 1}, "bad_request"),
]


@pytest.mark.parametrize(("fields", "code"), BAD, ids=[repr(f)[:60] for f, _ in BAD])
def test_bad_values_get_their_code_and_echo_the_ref(fields: dict[str, Any], code: str) -> None:
    assert refused(**fields).ref is None
    error = refused(**fields, ref="req-9")
    assert (error.code, error.ref) == (code, "req-9")
    assert encode(ErrorFrame.of(error)).endswith(',"ref":"req-9"}')


@pytest.mark.parametrize("ref", [7, True, ["a"], {"a": 1}, "x" * 65, "a\ud800"])
def test_a_bad_ref_is_a_bad_request_that_echoes_nothing(ref: object) -> None:
    for fields in (frame for frame, _ in HAPPY):
        error = refused(**fields, ref=ref)
        assert (error.code, error.ref) == ("bad_request", None)
        assert '"ref"' not in encode(ErrorFrame.of(error))


def test_room_names_are_normalised_as_nicks_are() -> None:
    fullwidth = parse(
        type="room_create", name="  \uff44\uff45\uff53\uff49\uff47\uff4e ", kind="public"
    )
    assert isinstance(fullwidth, RoomCreate) and fullwidth.name == "design"
    decomposed = parse(type="room_create", name="cafe\u0301", kind="public")
    assert isinstance(decomposed, RoomCreate) and decomposed.name == "caf\u00e9"
    assert clean_room_name("x" * MAX_ROOM_NAME) == "x" * MAX_ROOM_NAME
    assert clean_room_name("Dr. Who's room") == "Dr. Who's room"
    # 64 code points once normalised, though more were sent
    assert clean_room_name("e\u0301" * MAX_ROOM_NAME) == "\u00e9" * MAX_ROOM_NAME


def test_a_topic_is_one_trimmed_line_of_up_to_256_characters() -> None:
    at_most = parse(type="room_create", name="d", kind="public", topic=" " + "t" * MAX_TOPIC + " ")
    assert isinstance(at_most, RoomCreate) and at_most.topic == "t" * MAX_TOPIC
    none = parse(type="room_create", name="d", kind="public", topic=None)
    assert isinstance(none, RoomCreate) and none.topic == ""


# ----- send, typing and history take a room --------------------------------------


def test_version_1_frames_parse_to_the_records_they_did() -> None:
    """The records compare equal to those version 1 built (room: general)."""
    send = parse_frame(
        json.dumps({"type": "send", "client_offset": "a-1", "text": "hi", "to": None})
    )
    assert send == Send("a-1", "hi", None) == Send("a-1", "hi", None, GENERAL)
    private = parse_frame(
        json.dumps({"type": "send", "client_offset": "a", "text": "x", "to": "u"})
    )
    assert private == Send("a", "x", "u") and isinstance(private, Send) and private.room is None
    typing = parse_frame(json.dumps({"type": "typing", "active": True, "to": None}))
    assert typing == Typing(True, None) and isinstance(typing, Typing) and typing.room == GENERAL
    assert parse_frame(json.dumps({"type": "typing", "active": False, "to": "u"})) == Typing(
        False, "u", None
    )
    history = parse_frame(json.dumps({"type": "history", "before_id": 10, "limit": 20}))
    # No room: version 1's view (general and private messages), not general alone.
    assert history == History(10, 20, None) and isinstance(history, History)
    assert history.room is None and history != History(10, 20, None, GENERAL)
    with_bob = parse_frame(json.dumps({"type": "history", "with": "u-bob"}))
    assert with_bob == History(None, 50, "u-bob", None)


@pytest.mark.parametrize("rooms", [True, False])
def test_an_absent_or_null_room_is_general(rooms: bool) -> None:
    for room in ({}, {"room": None}, {"room": "general"}):
        send = parse_frame(json.dumps({"type": "send", "client_offset": "k", "text": "hi", **room}))
        typing = parse_frame(json.dumps({"type": "typing", "active": True, **room}), rooms=rooms)
        history = parse_frame(json.dumps({"type": "history", **room}), rooms=rooms)
        assert [send.room, typing.room] == [GENERAL] * 2  # type: ignore[union-attr]
        # A history page names general only when asked to; else version 1's view.
        assert history.room == room.get("room")  # type: ignore[union-attr]


def test_a_room_is_read_on_send_typing_and_history() -> None:
    assert parse(type="send", client_offset="k", text="hi", room="r5k2") == Send(
        "k", "hi", None, "r5k2"
    )
    assert parse(type="typing", active=True, to=None, room="r5k2") == Typing(True, None, "r5k2")
    assert parse(type="history", before_id=9, room="r5k2") == History(9, 50, None, "r5k2")


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "send", "client_offset": "k", "text": "hi", "to": "u-bob", "room": "r5k2"},
        {"type": "send", "client_offset": "k", "text": "hi", "to": "u-bob", "room": "general"},
        {"type": "typing", "active": True, "to": "u-bob", "room": "r5k2"},
        {"type": "history", "with": "u-bob", "room": "r5k2"},
        {"type": "send", "client_offset": "k", "text": "hi", "room": 5},
        {"type": "send", "client_offset": "k", "text": "hi", "room": ""},
        {"type": "send", "client_offset": "k", "text": "hi", "room": "r\ud800"},
        {"type": "send", "client_offset": "k", "text": "hi", "room": "r" * 129},
        {"type": "typing", "active": True, "room": ["r"]},
        {"type": "history", "room": {"id": "r"}},
    ],
)
def test_a_private_frame_takes_no_room_and_a_room_is_an_id(fields: dict[str, Any]) -> None:
    error = refused(**fields)
    assert error.code == "bad_request"
    assert error.client_offset == fields.get("client_offset")


def test_without_rooms_served_a_room_other_than_general_is_unknown() -> None:
    """Refused rather than read as general: nothing meant for a room goes to everyone."""
    for fields in (
        {"type": "send", "client_offset": "k", "text": "hi", "room": "r5k2"},
        {"type": "typing", "active": True, "room": "r5k2"},
        {"type": "history", "room": "r5k2"},
    ):
        error = refused(served=False, **fields)
        assert (error.code, error.client_offset) == ("unknown_room", fields.get("client_offset"))


def test_records_refuse_a_room_beside_a_private_conversation() -> None:
    with pytest.raises(ValueError):
        Send("k", "hi", "u-bob", "r5k2")
    with pytest.raises(ValueError):
        Message(1, ALICE, BOB, "hi", 0, room="r5k2")
    with pytest.raises(ValueError):
        Draft(ALICE, "k", "hi", BOB, room=GENERAL)


def test_messages_and_drafts_are_in_general_unless_private() -> None:
    assert Message(1, ALICE, None, "hi", 0).room == GENERAL
    assert Message(1, ALICE, BOB, "hi", 0).room is None
    assert Message(1, ALICE, None, "hi", 0, room="r5k2", mentions=("u-bob",)).room == "r5k2"
    assert Draft(ALICE, "k", "hi", None).room == GENERAL
    assert Draft(ALICE, "k", "hi", BOB).room is None
    assert Message(1, ALICE, None, "hi", 0).mentions == Draft(ALICE, "k", "hi", None).mentions == ()


# ----- error codes -------------------------------------------------------------


def test_the_room_error_codes_and_which_are_strikes() -> None:
    assert {
        "unknown_room",
        "not_member",
        "forbidden",
        "room_taken",
        "bad_room_name",
    } == ROOM_ERROR_CODES
    # A malformed name is the client's fault; the rest come to a right page
    # after a kick, a change of role, or another user's claim on a name.
    assert {"bad_room_name"} == ROOM_ERROR_CODES & CLIENT_FAULTS


# ----- server frames, as the contract shows them ---------------------------------

ALICE_WIRE = {"id": "u-alice", "nick": "alice"}
BOB_WIRE = {"id": "u-bob", "nick": "bob"}
DESIGN_WIRE = {"id": "r5k2", "name": "design", "kind": "public", "topic": ""}


def decoded(line: str) -> list[tuple[str, Any]]:
    """A line's members in order: equal only with the same keys in the same order."""
    assert "\n" not in line
    return list(json.loads(line).items())


CONTRACT: list[tuple[Any, dict[str, Any]]] = [
    (
        RoomsAnswer([ListedRoom(DESIGN, 3)]),
        {"type": "rooms", "rooms": [{**DESIGN_WIRE, "members": 3}]},
    ),
    (
        RoomsAnswer([], ref="q1"),
        {"type": "rooms", "rooms": [], "ref": "q1"},
    ),
    (
        MembersAnswer(
            "r5k2",
            [RoomMemberEntry(ALICE, Role.OWNER, True), RoomMemberEntry(BOB, Role.MEMBER, False)],
        ),
        {
            "type": "members",
            "room": "r5k2",
            "members": [
                {"id": "u-alice", "nick": "alice", "role": "owner", "online": True},
                {"id": "u-bob", "nick": "bob", "role": "member", "online": False},
            ],
        },
    ),
    (
        MemberNotice("invite", DESIGN, BOB, ALICE),
        {
            "type": "member",
            "event": "invite",
            "room": DESIGN_WIRE,
            "user": BOB_WIRE,
            "by": ALICE_WIRE,
        },
    ),
    (
        MemberNotice("join", DESIGN, BOB, BOB, ref="j1"),
        {
            "type": "member",
            "event": "join",
            "room": DESIGN_WIRE,
            "user": BOB_WIRE,
            "by": BOB_WIRE,
            "ref": "j1",
        },
    ),
    (ReadNotice(1234, "r5k2", None), {"type": "read", "room": "r5k2", "id": 1234}),
    (
        ReadNotice(1234, None, "u-bob", ref="r"),
        {"type": "read", "with": "u-bob", "id": 1234, "ref": "r"},
    ),
    (
        ErrorFrame("room_taken", "a room looks like that name", ref="c1"),
        {
            "type": "error",
            "code": "room_taken",
            "message": "a room looks like that name",
            "ref": "c1",
        },
    ),
    (
        MessageFrame(Message(1235, ALICE, None, "hi @bob", 17, room="r5k2", mentions=("u-bob",))),
        {
            "type": "message",
            "id": 1235,
            "from": ALICE_WIRE,
            "to": None,
            "text": "hi @bob",
            "ts": 17,
            "room": "r5k2",
            "mentions": ["u-bob"],
        },
    ),
    (
        MessageFrame(Message(1235, ALICE, None, "hi", 17), name_general=True),
        {
            "type": "message",
            "id": 1235,
            "from": ALICE_WIRE,
            "to": None,
            "text": "hi",
            "ts": 17,
            "room": "general",
        },
    ),
    (
        TypingNotice(ALICE, True, None, "r5k2"),
        {"type": "typing", "user": ALICE_WIRE, "active": True, "to": None, "room": "r5k2"},
    ),
    (
        HistoryPage([Message(9, ALICE, None, "x", 1, room="r5k2")], False, None, None, "r5k2"),
        {
            "type": "history",
            "messages": [
                {"id": 9, "from": ALICE_WIRE, "to": None, "text": "x", "ts": 1, "room": "r5k2"}
            ],
            "has_more": False,
            "before_id": None,
            "with": None,
            "room": "r5k2",
        },
    ),
]


@pytest.mark.parametrize(("frame", "wire"), CONTRACT, ids=[w["type"] for _, w in CONTRACT])
def test_each_server_frame_encodes_as_the_contract_shows(frame: Any, wire: dict[str, Any]) -> None:
    assert decoded(encode(frame)) == list(wire.items())


def test_a_read_notice_names_exactly_one_conversation() -> None:
    for room, with_user in ((None, None), ("r5k2", "u-bob")):
        with pytest.raises(ValueError):
            ReadNotice(1, room, with_user)


def test_version_1_message_frames_are_encoded_as_before() -> None:
    """A public message of general and a private message, byte for byte as
    version 1 wrote them (tests/test_server_frames.py holds the same lines)."""
    public = encode(MessageFrame(Message(1235, ALICE, None, "hi", 17)))
    assert public == (
        '{"type":"message","id":1235,"from":{"id":"u-alice","nick":"alice"},'
        '"to":null,"text":"hi","ts":17}'
    )
    private = Message(1236, ALICE, BOB, "psst", 18)
    expected = (
        '{"type":"message","id":1236,"from":{"id":"u-alice","nick":"alice"},'
        '"to":{"id":"u-bob","nick":"bob"},"text":"psst","ts":18}'
    )
    assert encode(MessageFrame(private)) == expected
    assert encode(MessageFrame(private, name_general=True)) == expected  # in no room
    page = encode(HistoryPage([private], False, None, "u-bob"))
    assert '"room"' not in page and '"mentions"' not in page


def test_the_welcome_lists_rooms_and_direct_conversations_after_version_1s_fields() -> None:
    standing = RoomStanding(Membership(DESIGN, Role.MEMBER, 1200), unread=7, mentions=1)
    direct = DirectStanding(BOB, read_id=1100, unread=2)
    welcome = Welcome(
        ALICE, "secret", [ALICE, BOB], 1234, "7f3a", True, LIMITS, [standing], [direct]
    )
    line = encode(welcome)
    assert json.loads(line) == welcome.wire()
    assert [key for key, _ in decoded(line)] == [
        "type",
        "user",
        "token",
        "online",
        "last_id",
        "epoch",
        "recovered",
        "limits",
        "rooms",
        "direct",
    ]
    assert json.loads(line)["rooms"] == [
        {"room": DESIGN_WIRE, "role": "member", "read_id": 1200, "unread": 7, "mentions": 1}
    ]
    assert json.loads(line)["direct"] == [{"user": BOB_WIRE, "read_id": 1100, "unread": 2}]
    plain = Welcome(ALICE, "secret", [ALICE], 1234, "7f3a", True, LIMITS)
    assert "rooms" not in json.loads(encode(plain)) and "direct" not in json.loads(encode(plain))
    with_nothing = Welcome(ALICE, "s", [ALICE], 1, "e", False, LIMITS, rooms=[], direct=[])
    assert json.loads(encode(with_nothing))["rooms"] == []


# ----- fuzz: nothing but FrameError --------------------------------------------

ROOM_FIELDS = ["name", "kind", "topic", "room", "user", "with", "id", "ref", "to", "active"]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([MAX_ID, MAX_ID + 1, -1, 0, 10**30])
    | st.floats()
    | st.text(max_size=80)
    | st.sampled_from(["general", "public", "private", "r5k2", "x" * 65, "\ud800", "é" * 64]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
room_frames = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "room_create",
                "room_join",
                "room_leave",
                "room_invite",
                "rooms",
                "members",
                "read",
                "send",
                "typing",
                "history",
            ]
        )
    },
    optional={name: values for name in ROOM_FIELDS}
    | {"client_offset": st.sampled_from(["k-1", "bad offset", 3]), "text": values},
)
DOCUMENTED_CODES = ROOM_ERROR_CODES | CLIENT_FAULTS | {"unknown_room"}


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(frame=room_frames, ascii_only=st.booleans())
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
    if isinstance(parsed, RoomCreate):
        assert 1 <= len(parsed.name) <= MAX_ROOM_NAME and len(parsed.topic) <= MAX_TOPIC
    if isinstance(parsed, MarkRead):
        assert (parsed.room is None) != (parsed.with_user is None)
    if isinstance(parsed, Send | Typing):
        assert (parsed.room is None) == (parsed.to is not None)
    if isinstance(parsed, History):
        assert parsed.room is None or parsed.with_user is None
