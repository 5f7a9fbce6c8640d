"""History is paid for: a page costs the messages it asks for, from one
budget per user over all their sockets and workers (issue 19, point 6).

One identity on 30 sockets asking for pages of 200 as fast as the frame limit
let it made the server read and send about 32,000 messages a second. The
budget (``QUARTCHAT_HISTORY_RATE`` / ``_BURST``) answers a page past it with
``rate_limited`` and a ``retry_after``, reading nothing, while everyone
else's history and sends go on. The limits' ``spend`` that pays for it is in
the limits' contract (tests/test_limits_contract.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from chatclient import ChatClient
from conftest import Clients, RunningServer, StartServer
from quartchat.config import Settings
from quartchat.errors import ConfigError

#: A refill so slow that no token comes back during a test.
NO_REFILL = 0.001
#: A page of the largest size, and a budget of exactly five of them.
PAGE = 200
FIVE_PAGES = 5 * PAGE


# ----- the settings ----------------------------------------------------------------


def test_the_history_budget_is_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"QUARTCHAT_HISTORY_RATE": "50.5", "QUARTCHAT_HISTORY_BURST": "400"}
    )
    assert (settings.history_rate, settings.history_burst) == (50.5, 400)
    defaults = Settings.from_env({})
    # Three tabs of the page, each filling a gap after a reconnect (three
    # pages of 200) and scrolling back ten pages of 50, fit the default burst.
    assert defaults.history_burst >= 3 * (3 * 200 + 10 * 50)
    assert defaults.history_rate >= 4 * 50


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUARTCHAT_HISTORY_RATE", "0"),
        ("QUARTCHAT_HISTORY_RATE", "fast"),
        ("QUARTCHAT_HISTORY_BURST", "0"),
        ("QUARTCHAT_HISTORY_BURST", "2.5"),
    ],
)
def test_a_bad_history_budget_fails_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_a_burst_smaller_than_the_largest_page_is_refused() -> None:
    with pytest.raises(ConfigError, match="QUARTCHAT_HISTORY_BURST"):
        Settings.from_env({"QUARTCHAT_HISTORY_MAX": "300", "QUARTCHAT_HISTORY_BURST": "299"})


# ----- a real server ----------------------------------------------------------------


async def page(client: ChatClient, **request: Any) -> dict[str, Any]:
    """Ask for a page; return the answer: the ``history`` page, or the ``error``."""
    await client.send(type="history", **{"before_id": None, "limit": PAGE, **request})
    while True:
        frame = await client.recv()
        if frame["type"] in ("history", "error"):
            return frame
        assert frame["type"] in ("presence", "typing", "message"), frame


async def sockets_of(
    server: RunningServer, clients: Clients, count: int, nick: str
) -> list[ChatClient]:
    """``count`` sockets of one user (on Redis, spread over both workers)."""
    first, _ = await clients.join(server, nick=nick)
    others = []
    for _ in range(count - 1):
        other = await clients.connect(server)
        await other.hello(token=first.welcome["token"])
        others.append(other)
    return [first, *others]


def assert_refused(answer: dict[str, Any]) -> None:
    assert answer["type"] == "error", answer
    assert answer["code"] == "rate_limited"
    assert answer["retry_after"] > 0
    assert "client_offset" not in answer


async def budget_server(start_server: StartServer) -> RunningServer:
    """A server whose history budget is five full pages, with no refill to speak of."""
    return await start_server(history_max=PAGE, history_rate=NO_REFILL, history_burst=FIVE_PAGES)


async def test_one_user_on_several_sockets_is_refused_past_the_budget_and_others_are_not(
    start_server: StartServer, clients: Clients
) -> None:
    server = await budget_server(start_server)
    bob, _ = await clients.join(server, nick="bob")
    ids = await bob.say_many([f"old {i}" for i in range(3)])
    mallory = await sockets_of(server, clients, 4, "mallory")

    answers = [await page(mallory[number % 4]) for number in range(9)]

    assert [a["type"] for a in answers] == ["history"] * 5 + ["error"] * 4
    for refused in answers[5:]:
        assert_refused(refused)
    # Bob's budget is his own: his history and his sends go on.
    bobs = await page(bob)
    assert bobs["type"] == "history"
    assert [m["id"] for m in bobs["messages"]] == ids
    ack = await bob.say("after", "still here")
    assert ack["id"] > ids[-1]
    # Mallory's sockets stay open and still answer everything else.
    for socket in mallory:
        await socket.send(type="ping")
        assert await socket.expect("pong", ignore=frozenset({"presence", "message"})) == {
            "type": "pong"
        }


async def test_the_budget_is_shared_by_every_socket_of_one_user(
    start_server: StartServer, clients: Clients
) -> None:
    """All five pages spent on one socket leave none for the user's other
    socket (on Redis: a socket on the other worker)."""
    server = await budget_server(start_server)
    first, second = await sockets_of(server, clients, 2, "mallory")
    for _ in range(5):
        assert (await page(first))["type"] == "history"
    assert_refused(await page(second))
    assert_refused(await page(second, limit=1))
    assert_refused(await page(first))


async def test_reading_as_the_page_does_is_never_refused(
    start_server: StartServer, clients: Clients
) -> None:
    """A guard on the defaults: three tabs of one user, each filling a gap
    after a reconnect (three pages of 200) and then scrolling back ten pages
    of 50, all at once, with no time to refill."""
    server = await start_server()
    tabs = await sockets_of(server, clients, 3, "reader")
    answers = []
    for tab in tabs:
        answers += [await page(tab) for _ in range(3)]
        answers += [await page(tab, limit=50) for _ in range(10)]
    assert {a["type"] for a in answers} == {"history"}
