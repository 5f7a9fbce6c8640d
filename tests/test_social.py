"""Social features over a real socket: presence, nicknames, typing, private
messages, rate limiting and the origin check."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

import rawhttp
from chatclient import ChatClient
from conftest import Clients, RunningServer, StartServer
from quartchat.errors import POLICY_VIOLATION

#: Skip nothing: presence and typing frames are what these tests are about.
ALL = frozenset[str]()
#: A window long enough for a frame that is on its way to arrive.
QUIET = 0.3

#: Noise plus live messages: for waiting on a reply to our own request.
SKIP_LIVE = frozenset({"presence", "typing", "message"})

Frame = dict[str, Any]


# ----- helpers ----------------------------------------------------------------


async def hello_all(client: ChatClient, **hello: Any) -> list[Frame]:
    """Send ``hello`` and return *every* frame after the welcome, up to the
    pong of a ping sent right after (``ChatClient.hello`` keeps only messages)."""
    frame = {"token": None, "nick": None, "last_id": None, "epoch": None, **hello}
    await client.send(type="hello", **frame)
    client.welcome = await client.recv()
    assert client.welcome["type"] == "welcome", client.welcome
    await client.send(type="ping")
    seen = []
    while (got := await client.recv())["type"] != "pong":
        seen.append(got)
    return seen


async def quiet_all(client: ChatClient, seconds: float = QUIET) -> list[Frame]:
    """Every frame, presence and typing included, that arrives in ``seconds``."""
    return await client.quiet(seconds, ignore=ALL)


async def say(client: ChatClient, offset: str, text: str, to: str | None = None) -> Frame:
    """Send a message and return its ack, skipping live messages queued before it."""
    await client.send(type="send", client_offset=offset, text=text, to=to)
    return await client.expect("ack", ignore=SKIP_LIVE)


def of_type(frames: list[Frame], kind: str, event: str | None = None) -> list[Frame]:
    return [f for f in frames if f["type"] == kind and (event is None or f.get("event") == event)]


async def drop(client: ChatClient) -> None:
    """Vanish without a close handshake: the TCP connection just ends (a tab
    killed, a network gone), so the server sees its handler cancelled."""
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.ws.aclose()  # cancelled before the close frame: stream closed
    assert client.ws.closed is not None


async def history(client: ChatClient, **request: Any) -> list[Frame]:
    """The ``history`` answer's messages (``with`` passed as ``with_``)."""
    if "with_" in request:
        request["with"] = request.pop("with_")
    await client.send(type="history", **{"before_id": None, "limit": 200, **request})
    # live messages may be queued ahead of the answer
    answer = await client.expect("history", ignore=SKIP_LIVE)
    messages: list[Frame] = answer["messages"]
    return messages


# ----- presence -----------------------------------------------------------------


async def test_join_goes_to_others_but_not_to_the_joiner(
    server: RunningServer, clients: Clients
) -> None:
    """Others see a join; the joiner never hears about itself."""
    alice, _ = await clients.join(server, nick="alice")
    bob = await clients.connect(server)
    own = await hello_all(bob, nick="bob")
    assert of_type(own, "presence") == []
    joined = await alice.expect("presence", ignore=ALL)
    assert joined == {"type": "presence", "event": "join", "user": bob.user}
    assert of_type(await quiet_all(bob), "presence") == []
    assert of_type(await quiet_all(alice), "presence") == []  # exactly one join


async def test_welcome_online_lists_everyone_online_including_self(
    server: RunningServer, clients: Clients
) -> None:
    """``welcome.online`` is who is online, the new user included."""
    alice, _ = await clients.join(server, nick="alice")
    assert alice.welcome["online"] == [alice.user]
    bob, _ = await clients.join(server, nick="bob")
    online = bob.welcome["online"]
    assert sorted(online, key=lambda u: u["nick"]) == [alice.user, bob.user]


async def test_several_connections_of_one_user_count_once(
    server: RunningServer, clients: Clients
) -> None:
    """Three tabs: one join, one entry in ``online``, and a leave only when
    the last tab closes."""
    alice, _ = await clients.join(server, nick="alice")
    bob1, _ = await clients.join(server, nick="bob")
    token = bob1.welcome["token"]
    bob2, _ = await clients.join(server, token=token)
    bob3, _ = await clients.join(server, token=token)
    assert bob2.user == bob3.user == bob1.user

    seen = [await alice.expect("presence", ignore=ALL)] + await quiet_all(alice)
    assert of_type(seen, "presence") == [{"type": "presence", "event": "join", "user": bob1.user}]

    carol, _ = await clients.join(server, nick="carol")
    ids = [u["id"] for u in carol.welcome["online"]]
    assert sorted(ids) == sorted({alice.user["id"], bob1.user["id"], carol.user["id"]})
    assert len(ids) == 3

    await bob1.aclose()
    await drop(bob2)
    assert of_type(await quiet_all(alice), "presence", "leave") == []

    await bob3.aclose()
    left = await alice.expect("presence", ignore=ALL)
    assert left == {"type": "presence", "event": "leave", "user": bob1.user}
    assert (await carol.expect("presence", ignore=ALL))["event"] == "leave"

    # Gone for good: a newcomer does not see bob, and bob coming back joins again.
    dave, _ = await clients.join(server, nick="dave")
    assert bob1.user not in dave.welcome["online"]
    await clients.join(server, token=token)
    rejoined = [f for f in await quiet_all(alice) if f["type"] == "presence"]
    assert {"type": "presence", "event": "join", "user": bob1.user} in rejoined


@pytest.mark.parametrize("how", ["close", "abrupt"])
async def test_leave_is_sent_when_the_last_connection_ends(
    server: RunningServer, clients: Clients, how: str
) -> None:
    """A clean close and a vanished peer (the cancelled-handler path) both
    give a leave."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    assert (await alice.expect("presence", ignore=ALL))["event"] == "join"
    if how == "close":
        await bob.aclose()
    else:
        await drop(bob)
    left = await alice.expect("presence", ignore=ALL, within=3)
    assert left == {"type": "presence", "event": "leave", "user": bob.user}
    carol, _ = await clients.join(server, nick="carol")
    assert bob.user not in carol.welcome["online"]


# ----- nicknames ------------------------------------------------------------------


async def test_nick_from_hello_is_trimmed_and_used(server: RunningServer, clients: Clients) -> None:
    """The hello's nick (trimmed) is the user's nick, shown on their messages."""
    alice, _ = await clients.join(server, nick="  alice  ")
    bob, _ = await clients.join(server, nick="bob")
    assert alice.user["nick"] == "alice"
    await alice.say("a1", "hi")
    message = await bob.expect("message")
    assert message["from"] == {"id": alice.user["id"], "nick": "alice"}


async def test_nick_change_is_broadcast_to_everyone_including_the_sender(
    server: RunningServer, clients: Clients
) -> None:
    """Every connection, the renaming one and its sibling tab included, gets
    ``presence``/``nick`` with ``old_nick``."""
    alice, _ = await clients.join(server, nick="alice")
    alice2, _ = await clients.join(server, token=alice.welcome["token"])
    bob, _ = await clients.join(server, nick="bob")
    await alice.expect("presence", ignore=ALL)  # bob's join
    await alice2.expect("presence", ignore=ALL)
    await alice.send(type="nick", nick="  alicia ")
    expected = {
        "type": "presence",
        "event": "nick",
        "user": {"id": alice.user["id"], "nick": "alicia"},
        "old_nick": "alice",
    }
    for client in (alice, alice2, bob):
        assert await client.expect("presence", ignore=ALL) == expected
    for client in (alice, alice2, bob):
        assert of_type(await quiet_all(client), "presence") == []  # once each


@pytest.mark.parametrize(
    "nick",
    ["", "   ", "x" * 33, "bad\nnick", "tab\there", "bell\x07", "zero\u200bwidth", "\x00"],
    ids=["empty", "blank", "33-chars", "newline", "tab", "bell", "zero-width", "nul"],
)
async def test_bad_nick_is_refused_and_not_broadcast(
    server: RunningServer, clients: Clients, nick: str
) -> None:
    """Empty, over 32 characters or with control characters: ``bad_nick``,
    and nobody hears of a change."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.expect("presence", ignore=ALL)
    await bob.send(type="nick", nick=nick)
    assert (await bob.expect("error", ignore=ALL))["code"] == "bad_nick"
    assert of_type(await quiet_all(alice), "presence") == []
    await bob.say("b1", "still bob")
    assert (await alice.expect("message"))["from"]["nick"] == "bob"


async def test_bad_nick_in_hello_gives_an_error_and_a_guest_name(
    server: RunningServer, clients: Clients
) -> None:
    """A bad nick in hello does not block the session: an error, then a
    generated name."""
    client = await clients.connect(server)
    frames = await hello_all(client, nick="no\ncontrol")
    assert [f["code"] for f in of_type(frames, "error")] == ["bad_nick"]
    assert client.user["nick"].startswith("guest-")


async def test_nick_of_32_characters_after_trimming_is_accepted(
    server: RunningServer, clients: Clients
) -> None:
    """The limit counts characters after trimming (Unicode code points)."""
    alice, _ = await clients.join(server, nick="alice")
    long = "é" * 32
    await alice.send(type="nick", nick=f"  {long}  ")
    frame = await alice.expect("presence", ignore=ALL)
    assert frame["user"]["nick"] == long


@pytest.mark.parametrize("taken", ["alice", "Alice", "ALICE"])
async def test_nick_held_by_another_online_user_is_taken(
    server: RunningServer, clients: Clients, taken: str
) -> None:
    """Nicks are unique online, compared case-insensitively: ``nick_taken``
    and nothing broadcast."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.expect("presence", ignore=ALL)
    await bob.send(type="nick", nick=taken)
    error = await bob.expect("error", ignore=ALL)
    assert error["code"] == "nick_taken"
    assert of_type(await quiet_all(alice), "presence") == []
    assert of_type(await quiet_all(bob), "presence") == []
    await bob.say("b1", "who am I")
    assert (await alice.expect("message"))["from"]["nick"] == "bob"


async def test_hello_with_a_taken_nick_gets_nick_taken_and_another_name(
    server: RunningServer, clients: Clients
) -> None:
    """A newcomer asking for an online user's nick (any case) gets told, and
    a nick that differs from it case-insensitively."""
    await clients.join(server, nick="alice")
    other = await clients.connect(server)
    frames = await hello_all(other, nick="ALICE")
    assert [f["code"] for f in of_type(frames, "error")] == ["nick_taken"]
    assert other.user["nick"].casefold() != "alice"


async def test_a_user_may_change_the_case_of_their_own_nick(
    server: RunningServer, clients: Clients
) -> None:
    """Their own nick in another case is not 'taken'."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.expect("presence", ignore=ALL)
    await alice.send(type="nick", nick="ALICE")
    expected = {
        "type": "presence",
        "event": "nick",
        "user": {"id": alice.user["id"], "nick": "ALICE"},
        "old_nick": "alice",
    }
    assert await alice.expect("presence", ignore=ALL) == expected
    assert await bob.expect("presence", ignore=ALL) == expected


async def test_nick_is_free_again_once_its_holder_leaves(
    server: RunningServer, clients: Clients
) -> None:
    """Uniqueness is among online users: after alice leaves, bob may be alice."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.aclose()
    assert (await bob.expect("presence", ignore=ALL))["event"] == "leave"
    await bob.send(type="nick", nick="Alice")
    frame = await bob.expect("presence", ignore=ALL)
    assert frame["event"] == "nick" and frame["user"]["nick"] == "Alice"


async def test_a_renamed_nick_is_free_for_others(server: RunningServer, clients: Clients) -> None:
    """After alice renames, her old nick is no longer held."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.send(type="nick", nick="alicia")
    await bob.expect("presence", ignore=ALL)
    await bob.send(type="nick", nick="alice")
    # bob's own rename (after alice's, which he has already seen) comes next
    frame = await bob.expect("presence", ignore=ALL)
    assert frame["user"] == {"id": bob.user["id"], "nick": "alice"}


async def test_messages_keep_the_nick_they_were_sent_under(
    server: RunningServer, clients: Clients
) -> None:
    """A rename does not rewrite old messages: history and replay show each
    message with the nick its sender had then."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.say("a1", "before")
    await alice.send(type="nick", nick="alicia")
    await alice.expect("presence", ignore=ALL)
    await alice.say("a2", "after")
    live = [await bob.expect("message"), await bob.expect("message")]
    assert [m["from"]["nick"] for m in live] == ["alice", "alicia"]

    expected = [("before", "alice"), ("after", "alicia")]
    assert [(m["text"], m["from"]["nick"]) for m in await history(bob)] == expected
    _, replay = await clients.join(server, nick="carol")
    assert [(m["text"], m["from"]["nick"]) for m in replay] == expected


async def test_new_nick_persists_for_the_token_after_reconnect(
    server: RunningServer, clients: Clients
) -> None:
    """Coming back with the token (and no nick) restores the renamed nick."""
    alice, _ = await clients.join(server, nick="alice")
    token = alice.welcome["token"]
    await alice.send(type="nick", nick="alicia")
    await alice.expect("presence", ignore=ALL)
    await alice.send(type="ping")
    await alice.expect("pong", ignore=ALL)  # the rename is fully handled
    await alice.aclose()
    again, _ = await clients.join(server, token=token)
    assert again.user == {"id": alice.user["id"], "nick": "alicia"}


# ----- typing -------------------------------------------------------------------


async def start_typing(typist: ChatClient, watcher: ChatClient, to: str | None = None) -> Frame:
    """``typist`` starts typing; return what ``watcher`` gets."""
    await typist.send(type="typing", active=True, to=to)
    frame = await watcher.expect("typing", ignore=frozenset({"presence"}))
    assert frame == {"type": "typing", "user": typist.user, "active": True, "to": to}
    return frame


async def test_typing_reaches_others_but_not_the_typists_own_connections(
    server: RunningServer, clients: Clients
) -> None:
    """Public typing goes to everyone else; never back to any of the typist's tabs."""
    alice, _ = await clients.join(server, nick="alice")
    alice2, _ = await clients.join(server, token=alice.welcome["token"])
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    await start_typing(alice, bob)
    await carol.expect("typing", ignore=frozenset({"presence"}))
    assert of_type(await quiet_all(alice), "typing") == []
    assert of_type(await quiet_all(alice2, 0.05), "typing") == []


async def test_sending_a_message_clears_typing(server: RunningServer, clients: Clients) -> None:
    """The server clears the indicator itself when the message is sent,
    before the message arrives."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await start_typing(alice, bob)
    await alice.say("a1", "done typing")
    stop = await bob.expect("typing", ignore=frozenset({"presence"}))
    assert stop == {"type": "typing", "user": alice.user, "active": False, "to": None}
    assert (await bob.expect("message"))["text"] == "done typing"


@pytest.mark.parametrize("how", ["close", "abrupt"])
async def test_disconnecting_clears_typing(
    server: RunningServer, clients: Clients, how: str
) -> None:
    """A typist who leaves (cleanly or not) does not stay 'typing' forever."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await start_typing(alice, bob)
    if how == "close":
        await alice.aclose()
    else:
        await drop(alice)
    stop = await bob.expect("typing", ignore=frozenset({"presence"}), within=3)
    assert stop == {"type": "typing", "user": alice.user, "active": False, "to": None}


async def test_typing_times_out(start_server: StartServer, clients: Clients) -> None:
    """No fresh ``active: true`` for ``typing_timeout``: the server sends
    ``active: false`` (not before)."""
    server = await start_server(typing_timeout=0.3)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await start_typing(alice, bob)
    started = trio.current_time()
    stop = await bob.expect("typing", ignore=frozenset({"presence"}), within=2)
    assert stop == {"type": "typing", "user": alice.user, "active": False, "to": None}
    assert trio.current_time() - started >= 0.2


async def test_private_typing_reaches_the_recipient_only(
    server: RunningServer, clients: Clients
) -> None:
    """Typing to bob's id goes to bob's connections and nobody else."""
    alice, _ = await clients.join(server, nick="alice")
    alice2, _ = await clients.join(server, token=alice.welcome["token"])
    bob, _ = await clients.join(server, nick="bob")
    bob2, _ = await clients.join(server, token=bob.welcome["token"])
    carol, _ = await clients.join(server, nick="carol")
    await start_typing(alice, bob, to=bob.user["id"])
    await bob2.expect("typing", ignore=frozenset({"presence"}))
    for client in (carol, alice, alice2):
        assert of_type(await quiet_all(client), "typing") == []


# ----- private messages --------------------------------------------------------------


async def test_private_message_reaches_the_two_ends_only(
    server: RunningServer, clients: Clients
) -> None:
    """Acked; live to every connection of the recipient and to the sender's
    other connections (not the sending one); never to a third user."""
    alice, _ = await clients.join(server, nick="alice")
    alice2, _ = await clients.join(server, token=alice.welcome["token"])
    bob, _ = await clients.join(server, nick="bob")
    bob2, _ = await clients.join(server, token=bob.welcome["token"])
    carol, _ = await clients.join(server, nick="carol")
    ack = await alice.say("dm1", "psst", to=bob.user["id"])
    assert ack["client_offset"] == "dm1" and ack["id"] > 0
    for client in (bob, bob2, alice2):
        message = await client.expect("message")
        assert message["id"] == ack["id"]
        assert message["from"] == alice.user
        assert message["to"] == {"id": bob.user["id"], "nick": "bob"}
        assert message["text"] == "psst"
    assert await carol.quiet() == []
    assert await alice.quiet() == []  # no echo to the sending connection


async def test_private_message_is_in_the_recipients_replay_and_history_only(
    server: RunningServer, clients: Clients
) -> None:
    """After the fact too: the recipient sees a DM in replay and history; a
    third user finds it nowhere."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    epoch = carol.welcome["epoch"]
    public = await alice.say("p1", "hello all")
    dm = await alice.say("dm1", "secret", to=bob.user["id"])

    assert [m["id"] for m in await history(carol)] == [public["id"]]
    assert await history(carol, with_=alice.user["id"]) == []
    replays = [
        (await clients.join(server, token=carol.welcome["token"], last_id=0, epoch=epoch))[1],
        (await clients.join(server, token=carol.welcome["token"]))[1],
    ]
    for replay in replays:
        assert [m["id"] for m in replay] == [public["id"]]

    assert [m["id"] for m in await history(bob)] == [public["id"], dm["id"]]
    _, replay = await clients.join(server, token=bob.welcome["token"], last_id=0, epoch=epoch)
    assert [m["id"] for m in replay] == [public["id"], dm["id"]]
    assert replay[1]["to"] == {"id": bob.user["id"], "nick": "bob"}


async def test_private_message_to_an_offline_user_waits_in_replay(
    server: RunningServer, clients: Clients
) -> None:
    """A DM to a known user who is offline is stored and replayed to them."""
    bob, _ = await clients.join(server, nick="bob")
    bob_token, bob_id = bob.welcome["token"], bob.user["id"]
    await bob.aclose()
    alice, _ = await clients.join(server, nick="alice")
    ack = await alice.say("dm1", "while you were out", to=bob_id)
    _, replay = await clients.join(server, token=bob_token, last_id=0)
    assert [(m["id"], m["text"]) for m in replay] == [(ack["id"], "while you were out")]
    assert replay[0]["to"] == {"id": bob_id, "nick": "bob"}


async def test_private_message_to_an_unknown_user_is_refused(
    server: RunningServer, clients: Clients
) -> None:
    """``unknown_user`` with the client_offset; nothing stored or delivered."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.send(type="send", client_offset="dm1", text="hello?", to="u-nobody")
    error = await alice.expect("error")
    assert error["code"] == "unknown_user"
    assert error["client_offset"] == "dm1"
    assert server.count("messages") == 0
    assert await bob.quiet() == []


async def test_history_with_a_user_is_only_that_thread(
    server: RunningServer, clients: Clients
) -> None:
    """``history`` with ``with`` gives the DMs between the two, both ways,
    and no public or other private messages."""
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    a_id, b_id, c_id = alice.user["id"], bob.user["id"], carol.user["id"]
    await say(alice, "p1", "public")
    ab = await say(alice, "ab", "to bob", to=b_id)
    ac = await say(alice, "ac", "to carol", to=c_id)
    ba = await say(bob, "ba", "to alice", to=a_id)
    bc = await say(bob, "bc", "bob to carol", to=c_id)

    assert [m["id"] for m in await history(alice, with_=b_id)] == [ab["id"], ba["id"]]
    assert [m["id"] for m in await history(bob, with_=a_id)] == [ab["id"], ba["id"]]
    assert [m["id"] for m in await history(alice, with_=c_id)] == [ac["id"]]
    assert [m["id"] for m in await history(carol, with_=b_id)] == [bc["id"]]
    assert [m["id"] for m in await history(carol, with_=a_id)] == [ac["id"]]


# ----- rate limiting -------------------------------------------------------------------


async def send_all(client: ChatClient, offsets: list[str]) -> list[Frame]:
    """Send one message per offset (its text is the offset) without waiting,
    then collect the answer (ack or error) to each, in arrival order."""
    for offset in offsets:
        await client.send(type="send", client_offset=offset, text=offset, to=None)
    answers: list[Frame] = []
    while len(answers) < len(offsets):
        frame = await client.recv()
        if frame["type"] in ("ack", "error"):
            answers.append(frame)
    return answers


async def test_sending_too_fast_is_rate_limited(
    start_server: StartServer, clients: Clients
) -> None:
    """A burst beyond ``send_burst`` is refused with ``rate_limited`` (naming
    each offset), nothing of it stored; others can still send."""
    server = await start_server(send_rate=1.0, send_burst=3)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    offsets = [f"m{i}" for i in range(10)]
    answers = await send_all(alice, offsets)
    acks = [a["client_offset"] for a in answers if a["type"] == "ack"]
    refused = [a for a in answers if a["type"] == "error"]
    assert acks == offsets[:3]
    assert [e["code"] for e in refused] == ["rate_limited"] * 7
    assert [e["client_offset"] for e in refused] == offsets[3:]
    assert server.count("messages") == 3
    assert [m["text"] for m in await bob.quiet()] == offsets[:3]

    await bob.say("b1", "unaffected")
    assert (await alice.expect("message"))["text"] == "unaffected"


async def test_a_send_beyond_the_frame_limit_is_refused_by_its_offset(
    start_server: StartServer, clients: Clients
) -> None:
    """The per-connection frame limit refuses a send with ``rate_limited``
    naming its ``client_offset``, like every answer to a send, so a client
    knows which message to send again; nothing of it is stored."""
    server = await start_server(frame_rate=0.01, frame_burst=3, send_burst=100)
    alice, _ = await clients.join(server, nick="alice")
    offsets = [f"f{i}" for i in range(5)]
    answers = await send_all(alice, offsets)
    # Errors go at once, acks after the commit: compare in offset order. The
    # first sends fit the burst (what joining took of it aside), the rest not.
    answered = sorted((a["client_offset"], a["type"]) for a in answers)
    acked = [offset for offset, kind in answered if kind == "ack"]
    assert [offset for offset, _ in answered] == offsets
    assert acked == offsets[: len(acked)]
    assert 1 <= len(acked) < len(offsets)
    assert {a["code"] for a in answers if a["type"] == "error"} == {"rate_limited"}
    assert server.count("messages") == len(acked)


async def test_rate_limit_is_per_user_across_connections(
    start_server: StartServer, clients: Clients
) -> None:
    """Opening another tab neither doubles nor refills the allowance."""
    server = await start_server(send_rate=1.0, send_burst=3)
    alice, _ = await clients.join(server, nick="alice")
    for i in range(3):
        await alice.say(f"a{i}", "x")
    alice2, _ = await clients.join(server, token=alice.welcome["token"])
    await alice2.send(type="send", client_offset="b0", text="x", to=None)
    error = await alice2.expect("error", ignore=SKIP_LIVE)
    assert (error["code"], error["client_offset"]) == ("rate_limited", "b0")


async def test_reconnecting_does_not_refill_the_allowance(
    start_server: StartServer, clients: Clients
) -> None:
    """A flooder who drops every tab and comes back finds the same spent bucket."""
    server = await start_server(send_rate=0.5, send_burst=3)
    alice, _ = await clients.join(server, nick="alice")
    for i in range(3):
        await alice.say(f"a{i}", "x")
    await alice.aclose()
    again, _ = await clients.join(server, token=alice.welcome["token"])
    await again.send(type="send", client_offset="b0", text="x", to=None)
    error = await again.expect("error", ignore=SKIP_LIVE)
    assert (error["code"], error["client_offset"]) == ("rate_limited", "b0")
    assert server.count() == 3


async def test_being_rate_limited_does_not_close_the_socket(
    start_server: StartServer, clients: Clients
) -> None:
    """More refused sends than the abuse allowance still keep the socket open."""
    server = await start_server(send_rate=1.0, send_burst=3, strikes=5)
    alice, _ = await clients.join(server, nick="alice")
    for i in range(15):
        await alice.send(type="send", client_offset=f"m{i}", text="x", to=None)
    await alice.send(type="ping")
    frames = []
    while (frame := await alice.recv())["type"] != "pong":
        frames.append(frame)
    assert len(of_type(frames, "ack")) == 3
    assert len(of_type(frames, "error")) == 12


async def test_a_peer_that_sent_garbage_is_closed_with_1008(
    server: RunningServer, clients: Clients
) -> None:
    """Past the allowance of bad frames: error frames, then 1008; other
    clients carry on."""
    bob, _ = await clients.join(server, nick="bob")
    abuser, _ = await clients.join(server, nick="mallory")
    assert (await bob.expect("presence", ignore=ALL))["event"] == "join"
    for _ in range(server.settings.strikes + 1):
        await abuser.send_raw("not json")
    assert (await abuser.expect("error"))["code"] == "bad_json"
    assert await abuser.close_code() == POLICY_VIOLATION

    left = await bob.expect("presence", ignore=ALL)
    assert left == {"type": "presence", "event": "leave", "user": abuser.user}
    await bob.say("b1", "still here")
    _, replay = await clients.join(server, nick="carol")
    assert [m["text"] for m in replay] == ["still here"]


async def test_a_peer_that_keeps_sending_garbage_is_closed_with_1008(
    server: RunningServer, clients: Clients
) -> None:
    """A peer still sending when it is cut must see 1008 too ("reconnect
    later"), not an abnormal 1006; other clients carry on."""
    bob, _ = await clients.join(server, nick="bob")
    abuser, _ = await clients.join(server, nick="mallory")
    assert (await bob.expect("presence", ignore=ALL))["event"] == "join"
    try:
        for _ in range(30):
            await abuser.send_raw("not json")
    except ConnectionClosed:
        pass  # the server may close before all 30 are sent

    left = await bob.expect("presence", ignore=ALL)
    assert left == {"type": "presence", "event": "leave", "user": abuser.user}
    await bob.say("b1", "still here")
    _, replay = await clients.join(server, nick="carol")
    assert [m["text"] for m in replay] == ["still here"]
    assert await abuser.close_code() == POLICY_VIOLATION


# ----- origin check ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:1", "null"], ids=["site", "port", "null"]
)
async def test_cross_origin_socket_is_refused(server: RunningServer, origin: str) -> None:
    """A page on another site (or port) cannot open the socket: the
    handshake is rejected with 403."""
    assert await rawhttp.handshake(server, origin) == 403


async def test_same_origin_socket_is_accepted(server: RunningServer, clients: Clients) -> None:
    """The chat page's own origin may connect."""
    assert await rawhttp.handshake(server, server.base_url) == 101
    client = await clients.connect(server, origin=server.base_url)
    await client.hello(nick="alice")
    assert client.user["nick"] == "alice"


async def test_socket_without_origin_is_accepted(server: RunningServer, clients: Clients) -> None:
    """Non-browser clients send no Origin and are let in."""
    assert await rawhttp.handshake(server, None) == 101
    client = await clients.connect(server, origin=None)
    await client.hello(nick="bot")
    assert client.user["nick"] == "bot"


async def test_configured_origin_is_accepted_and_others_refused(
    start_server: StartServer, clients: Clients
) -> None:
    """With ``allowed_origins`` set, a listed origin may connect; others may not."""
    server = await start_server(allowed_origins=("http://chat.example",))
    assert await rawhttp.handshake(server, "http://chat.example") == 101
    client = await clients.connect(server, origin="http://chat.example")
    await client.hello(nick="alice")
    assert client.user["nick"] == "alice"
    assert await rawhttp.handshake(server, "http://evil.example") == 403
    # The page's own origin stays allowed: the list adds to it.
    assert await rawhttp.handshake(server, server.base_url) == 101
