"""The core contract over a real socket: session start, send/ack, dedup,
replay after a cursor, and no message lost or repeated."""

from __future__ import annotations

import json

import trio

import rawhttp
from conftest import Clients, RunningServer, StartServer
from quartchat.errors import GOING_AWAY, NO_HELLO, UNKNOWN_TOKEN


async def http_get(server: RunningServer, path: str) -> tuple[int, str]:
    status, _, body = await rawhttp.request(server, path)
    return status, body.decode("utf-8", "replace")


async def test_healthz_and_the_page_are_served(server: RunningServer) -> None:
    status, body = await http_get(server, "/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    status, page = await http_get(server, "/")
    assert status == 200
    assert "<html" in page.lower()
    assert (await http_get(server, "/static/does-not-exist.js"))[0] == 404


async def test_welcome_describes_the_session(server: RunningServer, clients: Clients) -> None:
    alice, replay = await clients.join(server, nick="alice")
    welcome = alice.welcome
    assert welcome["user"]["nick"] == "alice"
    assert welcome["user"]["id"] and welcome["token"]
    assert welcome["online"] == [welcome["user"]]
    assert welcome["last_id"] == 0
    assert welcome["epoch"] == server.hub.log.epoch
    assert welcome["recovered"] is False
    assert replay == []


async def test_a_new_identity_without_a_nick_is_a_guest(
    server: RunningServer, clients: Clients
) -> None:
    guest, _ = await clients.join(server)
    assert guest.user["nick"].startswith("guest-")


async def test_the_token_brings_back_the_same_user(server: RunningServer, clients: Clients) -> None:
    first, _ = await clients.join(server, nick="alice")
    await first.aclose()
    again, _ = await clients.join(server, token=first.welcome["token"])
    assert again.user == first.user


async def test_an_unknown_token_closes_with_4003(server: RunningServer, clients: Clients) -> None:
    client = await clients.connect(server)
    await client.send(type="hello", token="forged", nick=None, last_id=None, epoch=None)
    assert await client.close_code() == UNKNOWN_TOKEN
    assert server.count("users") == 0


async def test_no_hello_in_time_closes_with_4001(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(hello_timeout=0.2)
    client = await clients.connect(server)
    assert await client.close_code() == NO_HELLO


async def test_a_first_frame_other_than_hello_closes_with_4001(
    server: RunningServer, clients: Clients
) -> None:
    client = await clients.connect(server)
    await client.send(type="send", client_offset="a", text="hi", to=None)
    assert await client.close_code() == NO_HELLO
    assert server.count() == 0


async def test_a_message_is_acked_after_commit_and_never_echoed(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    alice_tab2, _ = await clients.join(server, token=alice.welcome["token"])
    bob, _ = await clients.join(server, nick="bob")

    ack = await alice.say("k3j-17", "hi")
    assert server.count() == 1  # the row is there by the time the ack is
    assert ack["client_offset"] == "k3j-17" and ack["id"] >= 1 and ack["ts"] > 0

    for other in (bob, alice_tab2):
        message = await other.expect("message")
        assert message == {
            "type": "message",
            "id": ack["id"],
            "from": alice.user,
            "to": None,
            "text": "hi",
            "ts": ack["ts"],
            # Protocol 1.1's one addition to a version-1 message: its room.
            "room": "general",
        }
    assert await alice.quiet() == []  # the sender's own connection gets only the ack


async def test_a_retry_gets_the_same_ack_and_is_not_broadcast_again(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    first = await alice.say("retry-me", "once")
    again = await alice.say("retry-me", "once")
    assert again == first
    assert (await bob.expect("message"))["id"] == first["id"]
    assert await bob.quiet() == []
    assert server.count() == 1


async def test_concurrent_retries_from_several_tabs_store_one_message(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    tabs = [alice] + [
        (await clients.join(server, token=alice.welcome["token"]))[0] for _ in range(3)
    ]
    bob, _ = await clients.join(server, nick="bob")
    acks: list[dict[str, object]] = []

    async def retry(tab_index: int) -> None:
        tab = tabs[tab_index]
        for _ in range(3):
            await tab.send(type="send", client_offset="same", text="dup?", to=None)
        for _ in range(3):
            acks.append(await tab.expect("ack", ignore=frozenset({"presence", "message"})))

    async with trio.open_nursery() as nursery:
        for index in range(len(tabs)):
            nursery.start_soon(retry, index)
    assert len(acks) == 12
    assert len({ack["id"] for ack in acks}) == 1
    assert server.count() == 1
    assert len([m for m in await bob.quiet() if m["type"] == "message"]) == 1


async def test_a_reconnect_after_a_cursor_gets_exactly_what_it_missed(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.say("a0", "before")
    seen = (await bob.expect("message"))["id"]
    await bob.aclose()
    missed = await alice.say_many([f"missed {i}" for i in range(1, 6)], prefix="a-")

    again, replay = await clients.join(
        server, token=bob.welcome["token"], last_id=seen, epoch=bob.welcome["epoch"]
    )
    assert again.welcome["recovered"] is True
    assert again.welcome["last_id"] == missed[-1]
    assert [m["id"] for m in replay] == missed
    assert [m["text"] for m in replay] == [f"missed {i}" for i in range(1, 6)]


async def test_a_gap_over_the_replay_limit_is_not_recovered(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(replay_limit=5)
    alice, _ = await clients.join(server, nick="alice")
    ids = await alice.say_many([f"m{i}" for i in range(8)])
    bob, replay = await clients.join(server, nick="bob", last_id=ids[0], epoch=server.hub.log.epoch)
    assert bob.welcome["recovered"] is False
    assert [m["id"] for m in replay] == ids[-5:]


async def test_a_first_visit_gets_the_newest_backlog(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(backlog=4)
    alice, _ = await clients.join(server, nick="alice")
    ids = await alice.say_many([f"m{i}" for i in range(6)])
    _, replay = await clients.join(server, nick="bob")
    assert [m["id"] for m in replay] == ids[-4:]


async def test_a_cursor_from_another_epoch_counts_as_none(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(backlog=3)
    alice, _ = await clients.join(server, nick="alice")
    ids = await alice.say_many([f"m{i}" for i in range(5)])
    bob, replay = await clients.join(server, nick="bob", last_id=ids[3], epoch="another-history")
    assert bob.welcome["recovered"] is False
    assert [m["id"] for m in replay] == ids[-3:]


async def test_history_pages_back_through_everything(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    ids = await alice.say_many([f"text {i}" for i in range(7)])
    await alice.send(type="history", before_id=None, limit=3)
    page = await alice.expect("history")
    assert [m["id"] for m in page["messages"]] == ids[4:]
    assert page["has_more"] is True
    assert set(page["messages"][0]) == {"id", "from", "to", "text", "ts", "room"}
    await alice.send(type="history", before_id=ids[4], limit=10)
    page = await alice.expect("history")
    assert [m["id"] for m in page["messages"]] == ids[:4]
    assert page["has_more"] is False


async def test_ping_gets_pong(server: RunningServer, clients: Clients) -> None:
    alice, _ = await clients.join(server, nick="alice")
    await alice.send(type="ping")
    assert await alice.recv() == {"type": "pong"}


async def test_replay_racing_live_traffic_loses_and_repeats_nothing(
    start_server: StartServer, clients: Clients
) -> None:
    """While one user commits a stream of messages, another keeps dropping
    and resuming from its cursor: it ends up with every id once, in order."""
    server = await start_server(send_rate=10_000, send_burst=10_000, frame_rate=10_000)
    writer, _ = await clients.join(server, nick="writer")
    reader, _ = await clients.join(server, nick="reader")
    token, epoch = reader.welcome["token"], reader.welcome["epoch"]
    total = 300
    received: list[int] = []

    async def write() -> None:
        for i in range(total):
            await writer.send(type="send", client_offset=f"w{i}", text=f"n{i}", to=None)
            if i % 10 == 0:
                await trio.lowlevel.checkpoint()
        for _ in range(total):
            await writer.expect("ack")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        reader_client = reader
        while len(received) < total:
            for _ in range(min(7, total - len(received))):
                received.append((await reader_client.expect("message"))["id"])
            if len(received) < total:
                await reader_client.aclose()
                reader_client, replay = await clients.join(
                    server, token=token, last_id=max(received), epoch=epoch
                )
                received.extend(m["id"] for m in replay)

    assert len(received) == total
    assert received == sorted(set(received))
    assert await reader_client.quiet() == []


async def test_messages_survive_a_restart_and_clients_resume(
    start_server: StartServer, clients: Clients
) -> None:
    first = await start_server()
    alice, _ = await clients.join(first, nick="alice")
    acked = await alice.say_many([f"before restart {i}" for i in range(3)])
    bob, _ = await clients.join(first, nick="bob")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.stop)
        assert await bob.close_code() == GOING_AWAY

    second = await start_server(db_path=first.settings.db_path)
    again, replay = await clients.join(second, token=alice.welcome["token"], last_id=0, epoch=None)
    assert second.hub.log.epoch == first.hub.log.epoch
    assert again.user == alice.user
    assert [m["id"] for m in replay] == acked
