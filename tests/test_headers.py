"""What the browser is told: a strict content security policy and friends on
every response, and which pages may open the socket."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_request_bodies import exchange, status_and_headers

from conftest import RunningServer, StartServer
from quartchat.config import Settings
from quartchat.errors import ConfigError
from rawhttp import handshake, request, upgrade

STATIC = Path(__file__).resolve().parent.parent / "static"


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as directive -> sources."""
    directives = (d.split() for d in header.split(";") if d.strip())
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/static/js/connection.js", "/static/style.css", "/healthz"]
)
async def test_every_response_tells_the_browser_to_be_strict(
    server: RunningServer, path: str
) -> None:
    status, headers, _ = await request(server, path)
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    csp = policy(headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == csp["frame-ancestors"] == csp["base-uri"] == ["'none'"]
    host = urlsplit(server.base_url).netloc
    assert csp["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]
    assert not any("unsafe" in source for sources in csp.values() for source in sources)


async def test_a_host_header_cannot_write_into_the_policy(server: RunningServer) -> None:
    _, headers, _ = await request(server, "/", {"Host": "x; script-src *"})
    csp = policy(headers["content-security-policy"])
    assert csp["connect-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]


class InlineFinder(HTMLParser):
    """Collects what a ``script-src 'self'; style-src 'self'`` policy blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.blocked.append("inline <script>")
        if tag == "style":
            self.blocked.append("<style> element")
        self.blocked += [f"{name}= on <{tag}>" for name in names if name == "style"]
        self.blocked += [f"{name}= on <{tag}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if name in ("src", "href") and value and urlsplit(value).netloc:
                self.blocked.append(f"{name}={value} on <{tag}> (another origin)")


def test_the_page_needs_nothing_the_policy_blocks() -> None:
    finder = InlineFinder()
    finder.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert finder.blocked == []


# ----- which pages may open the socket ---------------------------------------------------


async def test_by_default_an_origin_matching_the_host_is_trusted(server: RunningServer) -> None:
    """What the README warns about: with no public origin set, the page's own
    origin is read from the Host header, so a DNS-rebinding page (whose
    Origin is its own Host, at any scheme) gets in. For local use only."""
    assert await handshake(server, "http://rebound.example:8000", "rebound.example:8000") == 101
    assert await handshake(server, "https://rebound.example:8000", "rebound.example:8000") == 101
    assert await handshake(server, "http://other.example:8000", "rebound.example:8000") == 403


async def test_a_public_origin_is_compared_exactly(start_server: StartServer) -> None:
    server = await start_server(public_origins=("https://chat.example",))
    assert await handshake(server, "https://chat.example", "chat.example") == 101
    assert await handshake(server, None) == 101  # not a browser
    refused = [
        ("http://chat.example", "chat.example"),  # another scheme
        ("https://chat.example:8443", "chat.example:8443"),  # another port
        ("https://rebound.example", "rebound.example"),  # Origin equals Host: no longer enough
        (server.base_url, urlsplit(server.base_url).netloc),
        ("null", None),
    ]
    for origin, host in refused:
        assert await handshake(server, origin, host) == 403, origin


async def test_allowed_origins_add_to_the_public_ones(start_server: StartServer) -> None:
    server = await start_server(
        public_origins=("https://chat.example",), allowed_origins=("https://embed.example",)
    )
    assert await handshake(server, "https://chat.example") == 101
    assert await handshake(server, "https://embed.example") == 101
    assert await handshake(server, "https://evil.example") == 403


def test_public_origins_are_read_as_browsers_send_them() -> None:
    settings = Settings.from_env(
        {"QUARTCHAT_PUBLIC_ORIGIN": "https://Chat.Example.org, http://localhost:8000/"}
    )
    assert settings.public_origins == ("https://chat.example.org", "http://localhost:8000")
    assert Settings.from_env({}).public_origins == ()


@pytest.mark.parametrize(
    "value", ["chat.example.org", "https://chat.example.org/chat", "*", "ftp://chat.example.org"]
)
def test_a_public_origin_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="QUARTCHAT_PUBLIC_ORIGIN"):
        Settings.from_env({"QUARTCHAT_PUBLIC_ORIGIN": value})


# ----- answers that are not the app's pages ----------------------------------------------


def assert_strict(headers: dict[str, str]) -> None:
    """The headers :func:`test_every_response_tells_the_browser_to_be_strict` reads."""
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    csp = policy(headers["content-security-policy"])
    assert csp["default-src"] == csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]


async def test_a_refused_origin_is_told_to_be_strict_too(server: RunningServer) -> None:
    status, headers, body = await request(
        server, "/ws", upgrade("http://other.example:8000", "rebound.example:8000")
    )
    assert status == 403
    assert body == b"origin not allowed"
    assert_strict(headers)


#: Requests hypercorn answers by itself, without asking the app, and the status it
#: gives. Each exchange reads until the server closes: a refusal holds nothing.
REFUSED_BY_HYPERCORN = {
    "a malformed header line": (b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    "a header block past 16 KiB": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000, 431),
    "an unsupported transfer coding": (
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    "a WebSocket upgrade with no key": (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize(
    ("packet", "expected"), REFUSED_BY_HYPERCORN.values(), ids=REFUSED_BY_HYPERCORN.keys()
)
async def test_hypercorns_own_answers_are_strict_too(
    server: RunningServer, packet: bytes, expected: int
) -> None:
    status, headers = status_and_headers(await exchange(server, packet))
    assert status == expected
    assert_strict(headers)
    assert policy(headers["content-security-policy"])["connect-src"] == ["'self'"]
