"""The ASGI app: the page, ``/healthz``, the ``/ws`` chat socket and the
server API (:mod:`quartchat.api`, ``POST /api/messages``).

The only module that imports Quart. It reads the settings, opens the
backends they name, starts the hub in the app's nursery, and adapts Quart's websocket to the
:class:`~quartchat.session.Transport` a session speaks through. Run it with
``hypercorn --config hypercorn.toml quartchat:app``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import html
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast
from urllib.parse import urlsplit

import trio
from quart import Response, request, send_from_directory, websocket
from quart.globals import websocket_ctx
from quart.wrappers import Websocket
from quart_trio import QuartTrio

from .api import ServerApi
from .backends import open_backends
from .backends.sqlite_log import WritesChecked
from .config import Settings
from .errors import StoreError
from .headers import as_asgi, security_headers
from .hub import Hub
from .metrics import CONTENT_TYPE
from .patches import apply as apply_patches
from .patches.direct_send import DirectSend
from .patches.handshake_refusals import HandshakeEnded
from .patches.quart_receive import queued_frames
from .session import Session

#: An ASGI application: ``(scope, receive, send)``.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

HUB_KEY = "quartchat.hub"
SESSIONS_KEY = "quartchat.sessions"

#: Objects allocated (net) between young-generation collections. Python's
#: default, 700, makes a server with many live connections run frequent
#: collections whose older-generation passes stall every client at once: with
#: 100 receivers at 40 msg/s, p99 delivery latency went from ~75 ms to ~21 ms
#: with this (scripts/bench.py, server and generator on separate cores).
GC_THRESHOLDS = (50_000, 20, 100)
#: Closed connections between two trims of the heap. A closed connection is
#: freed at once (reference counting: the hypercorn guard breaks the cycle
#: each connection was), but the heap it used is left fragmented, and glibc
#: keeps the free pages: without this, RSS grew by a third from 20,000 to
#: 60,000 connect/disconnect cycles (issue 8). After this many closes
#: ``malloc_trim`` hands the free memory back (0.2 ms with 10,000
#: connections open); nothing runs while no connection closes. There is no
#: full garbage collection here: it walks every live object, and stalled
#: every client for 2.6 s with 10,000 connections open.
TRIM_EVERY_CLOSES = 5_000


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)``, where there is one: free heap back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


class TrimAfterCloses:
    """Runs ``trim`` (:func:`trim_heap`) after every ``every`` closed
    connections (see :data:`TRIM_EVERY_CLOSES`)."""

    __slots__ = ("_every", "_left", "_trim")

    def __init__(self, every: int, trim: Callable[[], object] = trim_heap) -> None:
        self._every = self._left = every
        self._trim = trim

    def closed(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._left = self._every
            self._trim()


#: The scope key under which :func:`keep_asgi_send` leaves a socket's ASGI ``send``.
ASGI_SEND_KEY = "quartchat.asgi_send"


def keep_asgi_send(asgi_app: ASGIApp) -> ASGIApp:
    """ASGI middleware: leave each websocket's ``send`` callable in its scope.

    The session's frames then go straight to the server (hypercorn) instead
    of through Quart's websocket wrapper, which for every frame checks the
    accept again, builds the message through two partials and fires a
    signal nobody listens to: about 5% of a busy worker's time in a profile
    with 1000 receivers. Everything else (accept, receive, close) still goes
    through Quart."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, ASGI_SEND_KEY: send}
        await asgi_app(scope, receive, send)

    return app


#: The answer to a request that announces a body: no route here takes one.
BODY_REFUSED = b"this server takes no request body\n"


def announces_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """True if a request with these (ASGI) headers says a body follows:
    a ``Content-Length`` other than 0, or any ``Transfer-Encoding``."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (
            lowered == b"content-length" and value.strip() != b"0"
        ):
            return True
    return False


def refuse_bodies(asgi_app: ASGIApp, api: ServerApi | None = None) -> ASGIApp:
    """ASGI middleware: answer 413 at once, and close, to any HTTP request
    that announces a body, before reading any of it; requests to ``api``'s
    path go to ``api`` instead, which reads a bounded body itself
    (:mod:`quartchat.api`: in size and in time).

    No other route of quartchat takes a body, and reading one is unbounded in
    time: a POST announcing 10**9 bytes sent a byte every 5 s (within
    hypercorn's read timeout) held its connection for ever, and ~1,010 of them
    used up the file descriptors of a process limited to 1,024. The answer
    says ``Connection: close``, so hypercorn closes the connection as soon
    as it is written; the body is never read."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if api is not None and api.serves(scope):
            await api(scope, receive, send)
            return
        if scope["type"] != "http" or not announces_body(scope["headers"]):
            await asgi_app(scope, receive, send)
            return
        host = next((v for n, v in scope["headers"] if n.lower() == b"host"), None)
        headers = as_asgi(security_headers(None if host is None else host.decode("latin-1")))
        headers += [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(BODY_REFUSED)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": BODY_REFUSED})

    return app


class QuartTransport:
    """Quart's websocket as a session transport, sending straight to
    hypercorn's socket where it may (:mod:`quartchat.patches.direct_send`), else
    through the ASGI ``send`` that :func:`keep_asgi_send` kept (the socket is
    accepted first).

    Holds the connection's own websocket object rather than Quart's
    context-local proxy, so the hot path skips a context lookup. Quart-Trio
    cancels the handler when the client goes away, so ``receive`` never
    sees a departed peer: the session's cleanup runs on cancellation.
    """

    def __init__(self, socket: Websocket) -> None:
        self._socket = socket
        asgi_send = cast("dict[str, Any]", socket.scope)[ASGI_SEND_KEY]
        direct = DirectSend.attach(asgi_send)
        self.send: Callable[[str], Coroutine[Any, Any, None]]
        self.send = direct.send if direct is not None else self._send_through_asgi
        self._asgi_send = asgi_send
        # Frames already queued are taken without waiting (see Session:
        # sends waiting together share commits).
        self._waiting = queued_frames(socket)

    async def receive(self) -> str | bytes:
        return await self._socket.receive()

    def receive_nowait(self) -> str | bytes | None:
        if self._waiting is None:
            return None
        try:
            frame: str | bytes = self._waiting.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return None
        return frame

    async def _send_through_asgi(self, data: str) -> None:
        await self._asgi_send({"type": "websocket.send", "bytes": None, "text": data})

    async def close(self, code: int, reason: str) -> None:
        await self._socket.close(code, reason)


def origin_allowed(origin: str | None, host: str | None, settings: Settings) -> bool:
    """Browsers always send ``Origin``; other clients may not, and are let in.

    The page's own origin is accepted: one of ``settings.public_origins``
    exactly, when set; otherwise any origin whose host and port equal the
    request's ``Host``, whatever its scheme. That default is for local use: a
    DNS-rebinding page's Origin equals its Host too. ``allowed_origins`` adds
    others (``*``: any).
    """
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if "*" in settings.allowed_origins or origin in settings.allowed_origins:
        return True
    if settings.public_origins:
        return origin in settings.public_origins
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


class OpenSessions:
    """The chat sockets being served, so that a stopping server can end them
    all at once (1001) instead of when hypercorn's grace period runs out."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self._stopping = False
        self._all_ended = trio.Event()

    # add and discard, not a context manager: a generator's frame would stay
    # alive for every idle connection (issue 8).
    def add(self, session: Session) -> None:
        self._sessions.add(session)
        if self._stopping:  # opened after the stop began: ends at once
            session.shut_down()

    def discard(self, session: Session) -> None:
        self._sessions.discard(session)
        if self._stopping and not self._sessions:
            self._all_ended.set()

    async def shut_down(self) -> int:
        """End every session with 1001, and any that opens from now on;
        return once all have ended (each bounds its own close), with how
        many were open."""
        self._stopping = True
        open_now = len(self._sessions)
        for session in self._sessions:
            session.shut_down()
        if self._sessions:
            await self._all_ended.wait()
        return open_now


async def close_sessions(app: QuartTrio) -> int:
    """The server is stopping: close every chat socket now with 1001 (and any
    opened from here on as soon as it opens), and wait until they have all
    closed; how many were open. Nothing acked is lost: every ack follows its
    commit."""
    sessions: OpenSessions = app.extensions[SESSIONS_KEY]
    return await sessions.shut_down()


def create_app(settings: Settings | None = None) -> QuartTrio:
    settings = settings if settings is not None else Settings.from_env()
    apply_patches(settings)
    app = QuartTrio(__name__, static_folder=str(settings.static_dir), static_url_path="/static")
    # Connections are all closed when the lifespan ends; the hub can stop at once.
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = None
    sessions = app.extensions[SESSIONS_KEY] = OpenSessions()
    trimmer = TrimAfterCloses(TRIM_EVERY_CLOSES)

    def hub() -> Hub:
        found: Hub = app.extensions[HUB_KEY]
        return found

    app.asgi_app = refuse_bodies(  # type: ignore[method-assign,assignment]
        keep_asgi_send(app.asgi_app), ServerApi(settings, hub)
    )

    @app.before_serving
    async def start_hub() -> None:
        # What exists now (modules, the app) lives as long as the process:
        # keep it out of every future collection.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        the_hub = Hub(settings, await open_backends(settings))
        await app.nursery.start(the_hub.run)
        app.extensions[HUB_KEY] = the_hub

    @app.after_serving
    async def close_store() -> None:
        # Quart-Trio runs this hook inside the nursery it has just cancelled
        # (the timeout above is None): shielded, the store still checkpoints
        # its WAL into the database file and closes.
        with trio.CancelScope(shield=True):
            await hub().aclose()

    @app.after_request
    async def add_security_headers(response: Response) -> Response:
        response.headers.update(security_headers(request.headers.get("Host")))
        return response

    if settings.metrics:  # off: /metrics is a 404 like any unknown path

        @app.get("/metrics")
        async def metrics() -> Response:
            return Response(hub().metrics.render(), content_type=CONTENT_TYPE)

    @app.get("/")
    async def index() -> Response:
        """The page; with a JWT URL set, it names that URL in a meta tag (the
        page's JWT hook), and with guests off it says so (a visitor not
        signed in is told at once, not asked a nickname), where the page's
        script reads them."""
        metas = []
        if settings.jwt_url is not None:
            url = html.escape(settings.jwt_url)
            metas.append(f'<meta name="quartchat-jwt-url" content="{url}">')
        if not settings.guests:
            metas.append('<meta name="quartchat-guests" content="0">')
        if not metas:
            return await send_from_directory(settings.static_dir, "index.html")
        page = await trio.Path(settings.static_dir / "index.html").read_text(encoding="utf-8")
        tags = "".join(f"  {meta}\n" for meta in metas)
        page = page.replace("</head>", f"{tags}</head>", 1)
        return Response(page, content_type="text/html; charset=utf-8")

    @app.get("/healthz")
    async def healthz() -> tuple[dict[str, Any], int]:
        """200 while the log reads and writes; 503 while either fails (a full
        disk: every send fails, though reads work)."""
        log = hub().log
        try:
            last_id = await log.last_id()
            if isinstance(log, WritesChecked):
                await log.check_writes()
        except StoreError as exc:
            return {"status": "unavailable", "error": str(exc)}, 503
        return {"status": "ok", "last_id": last_id, "epoch": hub().log.epoch}, 200

    @app.websocket("/ws")
    async def chat_socket() -> Response | None:
        host = websocket.headers.get("Host")
        if not origin_allowed(websocket.headers.get("Origin"), host, settings):
            # after_request hooks do not see a websocket's refusal: its headers go here.
            return Response("origin not allowed", 403, headers=security_headers(host))
        try:
            await websocket.accept()
        except (
            HandshakeEnded
        ):  # the client broke its handshake (handshake_refusals): nothing to serve
            return None
        client = websocket.scope.get("client")  # (host, port), when the server knows it
        address = None if client is None else str(client[0])
        session = Session(hub(), QuartTransport(websocket_ctx.websocket), address)
        open_now = hub().metrics.connections_open
        open_now.inc()
        sessions.add(session)
        try:
            await session.serve()
        finally:
            sessions.discard(session)
            open_now.dec()
            trimmer.closed()
        return None

    return app
