"""What a send carries and what it spends, with the clients of one user on
two workers (on Redis; on SQLite the same clients share the one worker).

A worker keeps the online records of the users who send through it (no
presence read per send) and spends the send limit inside the log's append
(no round trip of its own): neither may let a renamed user send under the
old nick, nor let a second worker double the allowance.
"""

from __future__ import annotations

from conftest import Clients, StartServer

#: No token comes back within a test.
NO_REFILL = 0.01
SKIP = frozenset({"message", "typing"})


async def test_after_a_rename_every_tab_sends_with_the_new_nick(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server()
    # Clients land on the workers in turn: tab 1 and bob on one, tab 2 on the other.
    tab1, _ = await clients.join(server, nick="alice")
    tab2, _ = await clients.join(server, token=tab1.welcome["token"])
    bob, _ = await clients.join(server, nick="bob")
    await tab2.say("t2-0", "before")  # tab 2's worker now knows alice as "alice"
    assert (await bob.expect("message"))["from"]["nick"] == "alice"

    await tab1.send(type="nick", nick="alicia")
    for client in (tab1, tab2, bob):  # each has seen the rename before going on
        while (notice := await client.expect("presence", ignore=SKIP))["event"] != "nick":
            pass
        assert notice["user"]["nick"] == "alicia"

    for tab, offset, text in ((tab2, "t2-1", "from the other worker"), (tab1, "t1-0", "mine")):
        await tab.send(type="send", client_offset=offset, text=text, to=None)
        await tab.expect("ack", ignore=SKIP | {"presence"})
    got = [await bob.expect("message"), await bob.expect("message")]
    assert [(m["text"], m["from"]["nick"]) for m in got] == [
        ("from the other worker", "alicia"),
        ("mine", "alicia"),
    ]
    assert await bob.quiet() == []


async def test_one_users_send_limit_holds_across_workers(
    start_server: StartServer, clients: Clients
) -> None:
    """Two tabs on two workers draw from one allowance of ``send_burst``."""
    server = await start_server(send_rate=NO_REFILL, send_burst=3)
    tab1, _ = await clients.join(server, nick="alice")
    tab2, _ = await clients.join(server, token=tab1.welcome["token"])
    answers = []
    for i in range(3):  # alternating tabs, so alternating workers
        for tab, name in ((tab1, "a"), (tab2, "b")):
            await tab.send(type="send", client_offset=f"{name}{i}", text="x", to=None)
            while (frame := await tab.recv())["type"] not in ("ack", "error"):
                pass
            answers.append((frame["type"], frame.get("code"), frame["client_offset"]))
    assert answers == [
        ("ack", None, "a0"),
        ("ack", None, "b0"),
        ("ack", None, "a1"),
        ("error", "rate_limited", "b1"),
        ("error", "rate_limited", "a2"),
        ("error", "rate_limited", "b2"),
    ]
    assert server.count("messages") == 3


async def test_a_private_message_names_its_recipient_by_their_new_nick(
    start_server: StartServer, clients: Clients
) -> None:
    """The recipient's online record is kept too, and dropped by their rename."""
    server = await start_server()
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")  # on the other worker
    bob_id = bob.welcome["user"]["id"]
    await alice.send(type="send", client_offset="a0", text="hi bob", to=bob_id)
    await alice.expect("ack", ignore=SKIP | {"presence"})
    assert (await bob.expect("message"))["to"]["nick"] == "bob"

    await bob.send(type="nick", nick="robert")
    while (notice := await alice.expect("presence", ignore=SKIP))["event"] != "nick":
        pass
    assert notice["user"]["nick"] == "robert"
    await alice.send(type="send", client_offset="a1", text="hi robert", to=bob_id)
    await alice.expect("ack", ignore=SKIP | {"presence"})
    got = await bob.expect("message")
    assert (got["text"], got["to"]["nick"]) == ("hi robert", "robert")
