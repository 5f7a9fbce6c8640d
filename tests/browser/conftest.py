"""Fixtures for the browser tests: the real server command and a real Chromium.

The server is started the way a user starts it, ``python -m hypercorn --config
hypercorn.toml quartchat:app``, in its own process group (hypercorn may run
its worker in a child process) on a fresh SQLite file, and stopped with
SIGTERM to the whole group at the end. Each test gets its own server, so
presence lists and nicknames never leak from one test into the next.

Chromium is Debian's ``/usr/bin/chromium`` driven through Playwright's sync
API; nothing is downloaded. One browser serves the whole session and every
simulated user is a browser context of its own (its own localStorage, so its
own identity). The users fixture also fails a test whose pages threw an
uncaught exception or logged a ``quartchat:`` console error, and the server
fixture fails a test after which the server's log holds a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    WebSocket,
    expect,
    sync_playwright,
)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("QUARTCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


# ----- the server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            return bool(resp.status == 200 and b'"ok"' in resp.read())
    except (OSError, urllib.error.URLError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # A worker child may outlive the parent: make sure the group is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class ChatServer:
    """``hypercorn --config hypercorn.toml quartchat:app`` on its own database.

    The first start picks a free port; a restart (stop, then start) keeps
    the port and the database, as a redeploy does.
    """

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = workdir / "chat.db"
        self.log_path = workdir / "server.log"
        self.env = env
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.crashed: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fixed = self.port is not None
        for _attempt in range(1 if fixed else 3):  # a probed port may be taken meanwhile
            if not fixed:
                self.port = free_port()
            self.proc = self._launch()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _healthy(self.base_url):
                    return
                time.sleep(0.05)
            _stop(self.proc)
        raise RuntimeError(f"the server did not start:\n{self.log()[-3000:]}")

    def _launch(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "hypercorn",
            "--config", str(ROOT / "hypercorn.toml"),
            "-b", f"127.0.0.1:{self.port}",
            "quartchat:app",
        ]  # fmt: skip
        env = {**os.environ, "QUARTCHAT_DB": str(self.db_path), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                cmd, cwd=ROOT, env={**env, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.crashed is None:
            self.crashed = self.proc.poll()
        _stop(self.proc)
        self.proc = None

    def count(self, text: str) -> int:
        """How many stored messages carry exactly this text (read from the file)."""
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            row = conn.execute("SELECT COUNT(*) FROM messages WHERE text = ?", (text,)).fetchone()
            return int(row[0])

    def seed(self, messages: list[tuple[str, int]], nick: str = "carol") -> str:
        """Stop, write ``(text, ts)`` public messages from ``nick`` (a user of
        their own) straight into the file, start again: history from days
        the test did not live through. Returns that user's id."""
        self.stop()
        user_id = "u" + secrets.token_hex(8)
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=10)) as conn, conn:
            conn.execute(
                "INSERT INTO users (id, nick, token_hash, created) VALUES (?, ?, ?, 0)",
                (user_id, nick, secrets.token_hex(32)),
            )
            conn.executemany(
                "INSERT INTO messages (sender, nick, text, ts, client_offset)"
                " VALUES (?, ?, ?, ?, ?)",
                [(user_id, nick, text, ts, f"seed-{i}") for i, (text, ts) in enumerate(messages)],
            )
        self.start()
        return user_id

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra ``QUARTCHAT_*`` settings for the server; a test module may override it."""
    return {}


@contextlib.contextmanager
def running_server(workdir: Path, env: dict[str, str]) -> Iterator[ChatServer]:
    """A server started in ``workdir``, stopped at the end; afterwards it
    fails the test if the server died on its own or logged a traceback."""
    running = ChatServer(workdir, env)
    running.start()
    try:
        yield running
    finally:
        running.stop()
    log = running.log()
    if running.crashed is not None:
        raise AssertionError(f"the server exited by itself ({running.crashed}):\n{log[-5000:]}")
    if "Traceback" in log:
        raise AssertionError(f"the server logged an exception:\n{log[-5000:]}")


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[ChatServer]:
    """A fresh server with a fresh database for each test."""
    with running_server(tmp_path / "server", server_env) as running:
        yield running


# ----- the browser --------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def exact(text: str) -> re.Pattern[str]:
    """A has_text pattern matching an element's whole text, not a part of it."""
    return re.compile(rf"^{re.escape(text)}$")


# ----- simulated users ----------------------------------------------------------


@dataclass
class User:
    """One person: a browser context (one identity) with one or more tabs."""

    nick: str
    context: BrowserContext
    pages: list[Page] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    #: Every client frame any of its pages sent, decoded.
    frames_sent: list[dict[str, Any]] = field(default_factory=list)

    @property
    def page(self) -> Page:
        """The first tab still open."""
        return self.pages[0]

    def open_page(self) -> Page:
        page = self.context.new_page()
        label = f"{self.nick}#{len(self.pages) + 1}"
        page.on("pageerror", lambda exc: self.problems.append(f"{label} pageerror: {exc}"))

        def on_console(msg: Any) -> None:
            if msg.type == "error" and msg.text.startswith("quartchat:"):
                self.problems.append(f"{label} console: {msg.text}")

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("console", on_console)
        page.on("dialog", on_dialog)

        def on_socket(ws: WebSocket) -> None:
            self.sockets.append(ws.url)
            ws.on("framesent", self._record_frame)

        page.on("websocket", on_socket)
        page.on("close", lambda p: self.pages.remove(p) if p in self.pages else None)
        self.pages.append(page)
        page.goto("/")
        return page

    def _record_frame(self, payload: str | bytes) -> None:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            self.frames_sent.append(json.loads(payload))

    def join(self) -> Page:
        """First visit: pick the nickname in the dialog and wait until connected."""
        page = self.open_page()
        expect(page.locator("#nick-dialog")).to_be_visible(timeout=TIMEOUT)
        page.locator("#nick-input").fill(self.nick)
        page.locator("#nick-submit").click()
        expect(page.locator("#nick-dialog")).to_be_hidden(timeout=TIMEOUT)
        self.wait_connected(page)
        expect(page.locator("#me")).to_have_text(self.nick, timeout=TIMEOUT)
        return page

    def id(self, page: Page | None = None) -> str:
        user_id: str = (page or self.page).evaluate("window.quartchat.state.user.id")
        return user_id

    def send(self, text: str, page: Page | None = None) -> Locator:
        """Type and press Enter, as a user does; returns the own message element."""
        page = page or self.page
        page.locator("#input").fill(text)
        page.locator("#input").press("Enter")
        return self.msg(text, page)

    def msg(self, text: str, page: Page | None = None) -> Locator:
        """Message elements in the shown conversation whose text is exactly ``text``."""
        page = page or self.page
        return page.locator("#messages .msg").filter(
            has=page.locator(".msg-text").filter(has_text=exact(text))
        )

    def online(self, user_id: str, page: Page | None = None) -> Locator:
        """The entry for one user in this user's online list."""
        return (page or self.page).locator(f'#online li[data-user-id="{user_id}"]')

    def notices(self, text: str, page: Page | None = None) -> Locator:
        return (page or self.page).locator("#messages .notice").filter(has_text=text)

    def wait_connected(self, page: Page | None = None) -> None:
        expect((page or self.page).locator("#status")).to_have_attribute(
            "data-state", "connected", timeout=TIMEOUT
        )

    def screenshot(self, name: str, page: Page | None = None) -> Path:
        """Save ``artifacts/screenshots/<name>.png`` at the repository root."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        (page or self.page).screenshot(path=str(path), animations="disabled")
        return path


class Users:
    def __init__(self, browser: Browser, server: ChatServer) -> None:
        self.browser = browser
        self.server = server
        self.all: list[User] = []

    def new(
        self, nick: str, *, join: bool = True, viewport: ViewportSize | None = None,
        server: ChatServer | None = None, **context_options: Any,
    ) -> User:  # fmt: skip
        """A user whose pages open ``server`` (by default the test's server)."""
        context = self.browser.new_context(
            base_url=(server or self.server).base_url,
            viewport=viewport or DESKTOP,
            **context_options,
        )
        context.set_default_timeout(TIMEOUT)
        user = User(nick, context)
        self.all.append(user)
        if join:
            user.join()
        return user


@pytest.fixture
def users(browser: Browser, server: ChatServer) -> Iterator[Users]:
    """Make users on the test's server; closes their contexts before it stops."""
    pool = Users(browser, server)
    yield pool
    problems = [p for user in pool.all for p in user.problems]
    for user in pool.all:
        user.context.close()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


#: What :func:`count_pixels` can look for: JavaScript tests of one pixel.
PIXEL_TESTS = {
    # clearly red, yellow or green: colour emoji, not the white, grey or indigo
    # of an own bubble and its text
    "coloured": "Math.max(r, g) > b + 60",
    # clearly sky blue (the saltire's field), not the indigo of an own bubble
    "sky blue": "b > 150 && g > 80 && r < 60",
}


def count_pixels(page: Page, png: bytes, kind: str) -> int:
    """Pixels of the PNG ``png`` of a :data:`PIXEL_TESTS` kind, counted by the
    page's own canvas."""
    test = PIXEL_TESTS[kind]
    count: int = page.evaluate(
        """async (b64) => {
            const img = new Image();
            img.src = 'data:image/png;base64,' + b64;
            await img.decode();
            const canvas = document.createElement('canvas');
            canvas.width = img.width;
            canvas.height = img.height;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const d = ctx.getImageData(0, 0, img.width, img.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
                if (TEST) n += 1;
            }
            return n;
        }""".replace("TEST", test),
        base64.b64encode(png).decode(),
    )
    return count
