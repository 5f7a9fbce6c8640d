"""An ack is ordered with the messages: once a connection has the ack of
id N, every message below N it may see has already reached it. The page
moves its cursor on acks as on messages; a message arriving after an ack
of a higher id would be skipped by a resume from that cursor (a worker
killed, a network blip), and never seen live."""

from __future__ import annotations

import trio

from conftest import StartServer
from resuming import PATIENCE, ResumingClient

SENDERS = 12
MESSAGES = 15


async def test_no_message_arrives_below_an_ack_already_given(
    start_server: StartServer, nursery: trio.Nursery
) -> None:
    server = await start_server(send_rate=1000.0, send_burst=1000, new_identity_burst=1000)
    clients = [ResumingClient(f"user{n}") for n in range(SENDERS)]
    for client in clients:
        await client.connect(nursery, server.next_ws_url())

    async def talk(client: ResumingClient) -> None:
        for number in range(MESSAGES):
            assert await client.send(f"m{number}", f"{client.nick} {number}") is not None

    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as traffic:
            for client in clients:
                traffic.start_soon(talk, client)
        acked = {i for c in clients for i in c.acked.values()}
        for client in clients:
            await client.read_until(acked)

    assert {c.nick: c.below_cursor for c in clients} == {c.nick: [] for c in clients}
    for client in clients:
        await client.aclose()
