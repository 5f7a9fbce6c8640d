"""A chat for signed-in users only (QUARTCHAT_GUESTS=0): the server refuses
a hello without a JWT (4003, "this chat takes logins by jwt only").

A visitor who is not signed in (the JWT URL answers 401, 403, 204, a
redirect or {"jwt": null}, or there is no JWT URL) is told so, and the page
stops knocking: it tries once more on a reload, when the tab is shown again
or comes back online, and gets in once the JWT URL gives a JWT. A refused
JWT still fetches another with backoff, and an unknown token (where guests
are let in) still starts afresh, neither with that notice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.sync_api import Page, Request, Route, expect

from .conftest import ChatServer, User, Users, running_server
from .rooms_helpers import TIMEOUT
from .test_axe import violations
from .test_jwt_page import JWT_URL, SECRET, Backend, hellos, sign

pytestmark = pytest.mark.browser

LOGINS_ONLY = {"QUARTCHAT_JWT_SECRET": SECRET, "QUARTCHAT_GUESTS": "0"}
NOTICE = "This chat is for signed-in users. Sign in, then reload this page."


@pytest.fixture
def server_env() -> dict[str, str]:
    return {**LOGINS_ONLY, "QUARTCHAT_JWT_URL": JWT_URL}


class Answers:
    """The deployment's JWT URL answering one fixed response, counted."""

    def __init__(self, answer: Callable[[Route], None]) -> None:
        self.answer = answer
        self.requests: list[Request] = []

    def __call__(self, route: Route, request: Request) -> None:
        self.requests.append(request)
        self.answer(route)


NOT_SIGNED_IN: dict[str, Callable[[Route], None]] = {
    "jwt null": lambda route: route.fulfill(status=200, json={"jwt": None}),
    "403": lambda route: route.fulfill(status=403, body="forbidden"),
    "204": lambda route: route.fulfill(status=204, body=""),
    "redirect": lambda route: route.fulfill(status=302, headers={"Location": "/login"}),
}


def visitor(users: Users, nick: str, server: ChatServer | None = None, **storage: Any) -> User:
    """A visitor's context; ``storage`` is put in its localStorage first."""
    user = users.new(nick, join=False, server=server)
    if storage:
        items = {f"quartchat.{key}": json.dumps(value) for key, value in storage.items()}
        user.context.add_init_script(
            f"for (const [k, v] of Object.entries({json.dumps(items)})) localStorage.setItem(k, v);"
        )
    return user


def told_to_sign_in(page: Page) -> None:
    notice = page.locator("#signin-needed")
    expect(notice).to_be_visible(timeout=TIMEOUT)
    expect(notice).to_have_text(NOTICE, use_inner_text=True)
    expect(notice).to_have_attribute("role", "alert")
    expect(page.locator("#status")).to_have_attribute("data-state", "signin")
    expect(page.locator("#status .status-text")).to_have_text("Not signed in")
    expect(page.locator("#nick-dialog")).to_be_hidden()


def stays_quiet(user: User, asked: list[Request], ms: int = 4000) -> None:
    """No new socket and no new JWT request for ``ms``: no reconnect loop
    (the page's backoff starts at half a second)."""
    sockets, requests = len(user.sockets), len(asked)
    user.page.wait_for_timeout(ms)
    assert len(user.sockets) == sockets, user.sockets
    assert len(asked) == requests, [r.url for r in asked]


def knocks_once(user: User, asked: list[Request], knock: Callable[[], None]) -> None:
    """``knock`` makes the page try exactly once more, and it stays told."""
    sockets = len(user.sockets)
    knock()
    expect(user.page.locator("#status")).to_have_attribute("data-state", "signin")
    deadline_ms = 3000
    while len(user.sockets) == sockets and deadline_ms > 0:
        user.page.wait_for_timeout(100)
        deadline_ms -= 100
    assert len(user.sockets) == sockets + 1, user.sockets
    told_to_sign_in(user.page)
    stays_quiet(user, asked, 2500)


def test_a_visitor_not_signed_in_is_told_so_and_gets_in_after_signing_in(
    users: Users, server: ChatServer
) -> None:
    backend = Backend(None)  # the JWT URL answers 401
    alice = visitor(users, "alice")
    alice.context.route(f"**{JWT_URL}", backend)
    page = alice.open_page()
    # The page says guests are off: a first visit is told at once, and asked
    # no nickname.
    told_to_sign_in(page)
    expect(page.locator("#nick-dialog")).to_be_hidden()
    assert page.evaluate("window.quartchat.state.signInNeeded") is True
    assert "jwt" not in hellos(alice)[0]
    stays_quiet(alice, backend.requests)
    found: list[str] = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        found += violations(page, f"not signed in, {scheme}")
    assert not found, "axe-core found:\n" + "\n".join(found)

    # Back online, or the tab shown again: one more try each, no loop.
    def offline_and_back() -> None:
        alice.context.set_offline(True)
        alice.context.set_offline(False)

    knocks_once(alice, backend.requests, offline_and_back)
    shown = "document.dispatchEvent(new Event('visibilitychange'))"
    knocks_once(alice, backend.requests, lambda: page.evaluate(shown))
    # A reload tries once too, without asking a nickname again.
    knocks_once(alice, backend.requests, page.reload)

    # Signed in meanwhile (in another tab): a reload gets in with the JWT.
    backend.sub, backend.name = "account-5", "Alice Liddell"
    page.reload()
    alice.wait_connected(page)
    expect(page.locator("#signin-needed")).to_be_hidden()
    expect(page.locator("#nick-dialog")).to_be_hidden()
    expect(page.locator("#me")).to_have_text("Alice Liddell")
    assert hellos(alice)[-1]["jwt"] == backend.issued[-1]
    # Signed out again, then the tab shown again after signing in elsewhere:
    # the page gets in without a reload.
    backend.sub = None
    page.reload()
    told_to_sign_in(page)
    backend.sub = "account-5"
    page.evaluate(shown)
    alice.wait_connected(page)
    expect(page.locator("#signin-needed")).to_be_hidden()
    expect(page.locator("#me")).to_have_text("Alice Liddell")


def test_every_way_of_not_being_signed_in_is_told_the_same(
    users: Users, server: ChatServer, tmp_path: Path
) -> None:
    told: list[tuple[User, list[Request]]] = []
    for name, answer in NOT_SIGNED_IN.items():
        user = visitor(users, name.replace(" ", "-"))
        answers = Answers(answer)
        user.context.route(f"**{JWT_URL}", answers)
        page = user.open_page()
        told_to_sign_in(page)
        expect(page.locator("#nick-dialog")).to_be_hidden()  # no nickname asked
        told.append((user, answers.requests))
    # A returning guest of the days guests were let in: told the same; the
    # token is not unknown, only refused here, and is kept.
    returning = visitor(users, "returning", token="t" * 43, user={"id": "u1", "nick": "carol"})
    returning.context.route(f"**{JWT_URL}", Backend(None))
    returning.open_page()
    told.append((returning, []))
    for user, _ in told:
        told_to_sign_in(user.page)
    assert hellos(returning)[0]["token"] == "t" * 43
    for user, asked in told:
        stays_quiet(user, asked, 1500)
    kept = returning.page.evaluate("localStorage.getItem('quartchat.token')")
    assert kept == json.dumps("t" * 43)

    # No JWT URL at all: nothing could sign this visitor in.
    with running_server(tmp_path / "no-hook", LOGINS_ONLY) as other:
        nobody = visitor(users, "nobody", server=other)
        page = nobody.open_page()
        told_to_sign_in(page)
        expect(page.locator("#nick-dialog")).to_be_hidden()
        stays_quiet(nobody, [], 3000)
        nobody.context.close()


def test_a_refused_jwt_fetches_another_with_backoff_without_the_notice(
    users: Users, server: ChatServer
) -> None:
    forged: list[Request] = []

    def badly_signed(route: Route, request: Request) -> None:
        forged.append(request)
        token = jwt.encode({"sub": "x", "exp": 2**40}, "not the secret" * 4, algorithm="HS256")
        route.fulfill(status=200, json={"jwt": token})

    alice = visitor(users, "alice")
    alice.context.route(f"**{JWT_URL}", badly_signed)
    page = alice.open_page()
    page.wait_for_timeout(5000)
    assert len(forged) >= 3, "a refused JWT did not make the page fetch another"
    assert all("jwt" in hello for hello in hellos(alice))
    expect(page.locator("#status .status-text")).to_have_text("Connecting…")
    expect(page.locator("#signin-needed")).to_be_hidden()
    expect(page.locator("#nick-dialog")).to_be_hidden()

    # The backend fixed: the page gets in by itself.
    alice.context.unroute(f"**{JWT_URL}")
    alice.context.route(
        f"**{JWT_URL}",
        lambda route: route.fulfill(json={"jwt": sign("account-9", "Alice", 3600)}),
    )
    alice.wait_connected(page)
    expect(page.locator("#me")).to_have_text("Alice")


def test_an_unknown_token_starts_afresh_where_guests_are_let_in(
    users: Users, tmp_path: Path
) -> None:
    env = {"QUARTCHAT_JWT_SECRET": SECRET, "QUARTCHAT_JWT_URL": JWT_URL}
    with running_server(tmp_path / "guests", env) as guests_on:
        bob = visitor(users, "bob", server=guests_on, token="u" * 43, wanted_nick="bob")
        bob.context.route(f"**{JWT_URL}", Backend(None))
        page = bob.open_page()
        bob.wait_connected(page)
        expect(page.locator("#me")).to_have_text("bob")
        sent = hellos(bob)
        assert sent[0]["token"] == "u" * 43
        assert sent[-1]["token"] is None
        expect(page.locator("#signin-needed")).to_be_hidden()
        assert page.evaluate("window.quartchat.state.signInNeeded") is False
        bob.context.close()
