"""The page's JWT hook on the server's side: QUARTCHAT_JWT_URL, a path on the
chat's own origin, is read once and named in the served page's head, where
the page's script finds it; anything that is not such a path stops the start,
and without the setting the page is served as the file is."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import StartServer
from quartchat.config import Settings
from quartchat.errors import ConfigError
from rawhttp import request

SECRET = "s" * 32
STATIC = Path(__file__).resolve().parent.parent / "static"


class HeadMetas(HTMLParser):
    """The ``<meta name=... content=...>`` tags of a page's head, decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.in_head = False
        self.metas: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self.in_head = True
        if tag == "meta" and self.in_head:
            found = dict(attrs)
            if found.get("name"):
                self.metas[str(found["name"])] = str(found.get("content"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False


def head_metas(page: bytes) -> dict[str, str]:
    parser = HeadMetas()
    parser.feed(page.decode("utf-8"))
    return parser.metas


def test_the_jwt_url_is_read_with_a_key() -> None:
    settings = Settings.from_env(
        {"QUARTCHAT_JWT_SECRET": SECRET, "QUARTCHAT_JWT_URL": "/auth/chat-jwt?for=chat&v=2"}
    )
    assert settings.jwt_url == "/auth/chat-jwt?for=chat&v=2"
    assert Settings.from_env({}).jwt_url is None


@pytest.mark.parametrize(
    "url",
    [
        "https://accounts.example/jwt",  # another origin: the page may not fetch it
        "//accounts.example/jwt",  # the same, without a scheme
        "/\\accounts.example/jwt",  # browsers read a backslash as a slash
        "auth/jwt",  # relative to the page's path, not the origin
        "javascript:alert(1)",
        '/jwt"><script>alert(1)</script>',
        "/jwt with spaces",
        "/jwt#fragment",
        "/" + "a" * 2000,
    ],
)
def test_anything_but_a_path_on_the_origin_stops_the_start(url: str) -> None:
    with pytest.raises(ConfigError, match="QUARTCHAT_JWT_URL") as caught:
        Settings.from_env({"QUARTCHAT_JWT_SECRET": SECRET, "QUARTCHAT_JWT_URL": url})
    assert "own origin" in str(caught.value)


def test_a_jwt_url_needs_a_key_to_check_its_tokens() -> None:
    with pytest.raises(ConfigError, match=r"QUARTCHAT_JWT_URL=.*QUARTCHAT_JWT_SECRET"):
        Settings.from_env({"QUARTCHAT_JWT_URL": "/auth/chat-jwt"})


@pytest.mark.embedded_only
async def test_the_page_names_the_jwt_url_in_its_head(start_server: StartServer) -> None:
    server = await start_server(jwt_secret=SECRET, jwt_url="/auth/chat-jwt?for=chat&v=2")
    status, headers, body = await request(server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "content-security-policy" in headers
    # Escaped in the attribute ("&amp;"), read back as the setting.
    assert b'content="/auth/chat-jwt?for=chat&amp;v=2"' in body
    assert head_metas(body)["quartchat-jwt-url"] == "/auth/chat-jwt?for=chat&v=2"
    # The rest of the page is the file's, byte for byte.
    line = b'  <meta name="quartchat-jwt-url" content="/auth/chat-jwt?for=chat&amp;v=2">\n'
    assert body.replace(line, b"") == (STATIC / "index.html").read_bytes()


@pytest.mark.embedded_only
async def test_without_the_setting_the_page_is_the_file(start_server: StartServer) -> None:
    server = await start_server()
    status, _, body = await request(server, "/")
    assert status == 200
    assert body == (STATIC / "index.html").read_bytes()
    assert "quartchat-jwt-url" not in head_metas(body)


@pytest.mark.embedded_only
async def test_with_guests_off_the_page_says_so_in_its_head(start_server: StartServer) -> None:
    """So a visitor not signed in is told at once, not asked a nickname first."""
    server = await start_server(jwt_secret=SECRET, guests=False)
    _, _, body = await request(server, "/")
    metas = head_metas(body)
    assert metas["quartchat-guests"] == "0" and "quartchat-jwt-url" not in metas
    line = b'  <meta name="quartchat-guests" content="0">\n'
    assert body.replace(line, b"") == (STATIC / "index.html").read_bytes()
    _, _, page = await request(await start_server(jwt_secret=SECRET), "/")
    assert "quartchat-guests" not in head_metas(page)
