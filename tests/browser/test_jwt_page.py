"""The page's JWT hook and bans (issue 22). The server runs with
QUARTCHAT_JWT_SECRET and QUARTCHAT_JWT_URL; the deployment's backend that
answers that URL is played by each browser context's route: a JWT signed
for its logged-in user, or 401 for a visitor who is not logged in.

A logged-in user's page asks no nickname, logs in with the JWT in its hello
(never in a URL), keeps it out of storage, and fetches a new one before it
expires for its next connection; a guest's page is unchanged. An admin (a
JWT with roles ["admin"]) bans someone from a room's members dialog: that
user's page says so and stops reconnecting, after a reload too."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

import jwt
import pytest
from playwright.sync_api import Page, Request, Route, expect

from .conftest import ChatServer, User, Users
from .moderation_helpers import by_id, close_members, delete, manage, open_members, sent
from .rooms_helpers import TIMEOUT, create_room, join_from_directory
from .test_axe import violations

pytestmark = pytest.mark.browser

SECRET = "a shared secret of the deployment, 32+ bytes"
JWT_URL = "/auth/chat-jwt"


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"QUARTCHAT_JWT_SECRET": SECRET, "QUARTCHAT_JWT_URL": JWT_URL}


def sign(sub: str, name: str, lifetime: int, roles: Sequence[str] = ()) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub, "name": name, "iat": now, "exp": now + lifetime, "jti": secrets.token_hex(8),
    }  # fmt: skip
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, SECRET, algorithm="HS256")


class Backend:
    """The deployment's backend as one browser sees it: the JWT URL answers
    a fresh JWT for its account, or 401 when ``sub`` is None."""

    def __init__(
        self, sub: str | None, name: str = "", lifetime: int = 3600, roles: Sequence[str] = ()
    ):
        self.sub, self.name, self.lifetime, self.roles = sub, name, lifetime, roles
        self.issued: list[str] = []
        self.requests: list[Request] = []

    def __call__(self, route: Route, request: Request) -> None:
        self.requests.append(request)
        if self.sub is None:
            route.fulfill(status=401, json={"error": "not logged in"})
            return
        token = sign(self.sub, self.name, self.lifetime, self.roles)
        self.issued.append(token)
        route.fulfill(status=200, json={"jwt": token})


def logged_in(users: Users, server: ChatServer, nick: str, backend: Backend) -> User:
    """A user logged in to the deployment's site (its session cookie set),
    whose page needs no nickname dialog."""
    user = users.new(nick, join=False)
    user.context.add_cookies([{"name": "session", "value": f"s-{nick}", "url": server.base_url}])
    user.context.route(f"**{JWT_URL}", backend)
    page = user.open_page()
    user.wait_connected(page)
    expect(page.locator("#nick-dialog")).to_be_hidden()
    return user


def guest(users: Users, nick: str) -> User:
    """A visitor not logged in there: the JWT URL says 401, the page is a guest's."""
    user = users.new(nick, join=False)
    user.context.route(f"**{JWT_URL}", Backend(None))
    user.join()
    return user


def hellos(user: User) -> list[dict[str, Any]]:
    return [f for f in user.frames_sent if f.get("type") == "hello"]


def test_the_page_logs_in_with_the_backends_jwt_and_fetches_a_new_one_in_time(
    users: Users, server: ChatServer
) -> None:
    # A JWT living 70 s: the page fetches the next about a minute before it
    # ends (after 10 s), for its next connection.
    backend = Backend("account-17", "Alice Liddell", lifetime=70)
    alice = logged_in(users, server, "alice", backend)
    a = alice.page
    expect(a.locator("#me")).to_have_text("Alice Liddell")
    first = hellos(alice)[0]
    assert first["jwt"] == backend.issued[0]
    assert "token" not in first
    # Fetched with the visitor's cookies, as JSON; the JWT never in a URL.
    request = backend.requests[0]
    assert request.method == "GET"
    assert "session=s-alice" in (request.headers.get("cookie") or "")
    assert all(url.endswith("/ws") for url in alice.sockets), alice.sockets
    stored = a.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert backend.issued[0] not in stored
    assert json.loads(stored).get("quartchat.token") in (None, "null")

    # A guest, next to her: today's flow (the nickname dialog, a token).
    bob = guest(users, "bob")
    assert "token" in hellos(bob)[0] and "jwt" not in hellos(bob)[0]
    expect(alice.online(bob.id())).to_have_count(1, timeout=TIMEOUT)

    deadline = time.monotonic() + 20
    while len(backend.issued) < 2 and time.monotonic() < deadline:
        a.wait_for_timeout(250)
    assert len(backend.issued) == 2, "the page did not fetch a new JWT before the first expired"
    a.evaluate("window.quartchat.reconnect()")
    alice.wait_connected()
    assert hellos(alice)[-1]["jwt"] == backend.issued[1]
    assert len(backend.issued) == 2  # the one fetched in time was used, not another
    expect(a.locator("#me")).to_have_text("Alice Liddell")
    assert a.evaluate("window.quartchat.state.user.id") == alice.id()


def socket_count_stays(user: User, page: Page, count: int, ms: int) -> None:
    """No new socket for ``ms``: the page is not reconnecting."""
    page.wait_for_timeout(ms)
    assert len(user.sockets) == count, user.sockets


def test_a_banned_users_page_says_so_and_stops_reconnecting(
    users: Users, server: ChatServer
) -> None:
    admin = logged_in(users, server, "alice", Backend("staff-1", "alice", roles=["admin"]))
    a = admin.page
    assert a.evaluate("window.quartchat.state.admin") is True
    bob = guest(users, "bob")
    b = bob.page
    assert b.evaluate("window.quartchat.state.admin") is False
    # An admin moderates general too: bob's message there can go.
    spam = sent(bob, "spam in general")
    expect(admin.msg("spam in general")).to_have_count(1, timeout=TIMEOUT)
    delete(by_id(a, spam))
    expect(by_id(b, spam).locator(".msg-text")).to_have_text("message deleted", timeout=TIMEOUT)
    create_room(admin, "lobby")
    join_from_directory(bob, "lobby")

    open_members(a)
    manage(a, "bob").get_by_role("button", name="Ban from chat…").click()
    dialog = a.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(a.locator("#confirm-title")).to_have_text("Ban bob?")
    found = violations(a, "the ban dialog")
    a.locator("#confirm-choice").select_option(label="For good")
    a.locator("#confirm-ok").click()
    expect(dialog).to_be_hidden()
    expect(a.locator("#members-note")).to_have_text("bob is banned for good.", timeout=TIMEOUT)
    close_members(a)

    banner = b.locator("#banned")
    expect(banner).to_be_visible(timeout=TIMEOUT)
    expect(banner).to_contain_text("You have been banned from this chat.")
    expect(b.locator("#status")).to_have_attribute("data-state", "banned")
    expect(b.locator("#status .status-text")).to_have_text("Banned")
    expect(admin.online(bob.id())).to_have_count(0, timeout=TIMEOUT)
    for scheme in ("light", "dark"):
        b.emulate_media(color_scheme=scheme)
        found += violations(b, f"banned, {scheme}")
    assert not found, "axe-core found:\n" + "\n".join(found)
    socket_count_stays(bob, b, len(bob.sockets), 4000)

    # Going offline and online again, or reloading, knocks once at most.
    bob.context.set_offline(True)
    bob.context.set_offline(False)
    socket_count_stays(bob, b, len(bob.sockets), 2000)
    before = len(bob.sockets)
    b.reload()
    expect(b.locator("#banned")).to_be_visible(timeout=TIMEOUT)
    expect(b.locator("#status")).to_have_attribute("data-state", "banned")
    assert len(bob.sockets) == before + 1
    socket_count_stays(bob, b, before + 1, 4000)
    # The admin's page is unharmed.
    admin.send("still here")
    expect(admin.msg("still here")).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
