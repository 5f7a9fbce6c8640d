"""The server API: the deployment's backend posts into the chat over HTTP.

``POST /api/messages`` with ``Authorization: Bearer <QUARTCHAT_API_KEY>``
and a JSON body ``{"room", "text", "client_offset", "as": {"id", "name"}}``
stores a message as the user of the deployment's account ``as.id``: the
same user a JWT whose ``sub`` is that id logs in as. It is stored and
delivered as a ``send`` frame of that user would be (the same text rules,
send limit, dedup on ``client_offset``, rooms and privacy), and answers
``200`` with ``{"id", "ts"}``; a retry with the same ``client_offset``
answers the same id and stores nothing.

``as.name`` is the nick of a user the chat meets for the first time
(cleaned by the nick rules). After that it is not a rename: the user's nick
is theirs to change (a ``nick`` frame, their JWT's ``name`` at login), and
renaming someone who may be online would need the nick claimed among the
online users and announced, which a backend's post should not do under
their feet. A ``name`` is still checked, so a bad one is a ``400``.

This is the one route that reads a request body, so it is an ASGI app of
its own, ahead of Quart and its hooks, and reads the body on its own terms
(:func:`quartchat.app.refuse_bodies` hands it its path and refuses every
other body): the key is checked before a byte of the body is read; a body
announced over :data:`MAX_BODY` is refused at once, one that grows past it
as soon as it does, and one that takes over :data:`BODY_SECONDS` to arrive
is answered ``408``; each of these closes the connection, the rest unread.
With no key set the path answers ``404``, as if there were no API.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .config import Settings
from .errors import FrameError, StoreError
from .frame_fields import MAX_WANTED_NAME, is_scalar_text
from .headers import as_asgi, security_headers
from .jwt_identity import MAX_SUBJECT
from .protocol import Send, clean_nick, parse_frame

if TYPE_CHECKING:
    from .hub import Hub

#: The API's one path.
API_PATH = "/api/messages"
#: Bytes a request body may have. A ``send``'s fields at their largest fit:
#: 2000 characters of text, each escaped as JSON's ``\\ud83d\\ude00`` (12 bytes,
#: as Python's ``json.dumps`` writes an emoji), are 24,000 bytes; an ``as.id``
#: of 255 such characters, a room id, an offset and a name fit in the rest.
#: Half the WebSocket frame limit; a larger body is answered ``413``.
MAX_BODY = 32 * 1024
#: Seconds the whole body has to arrive, from the end of the headers. A body
#: sent a byte at a time within hypercorn's read timeout would otherwise hold
#: its connection for ever (issue 19); a slower one is answered ``408``.
BODY_SECONDS = 10.0

#: HTTP status of each refusal code; any other code is the client's ``400``.
STATUS_OF_CODE = {
    "unknown_room": 404,
    "unknown_user": 404,
    "not_member": 403,
    "forbidden": 403,
    "muted": 403,
    "rate_limited": 429,
}


class _Refused(Exception):
    """An answer other than ``200``: its status, the protocol's error code
    and wording, and whether the connection must close (its body unread)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        close: bool = False,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close
        self.headers = headers


class ServerApi:
    """``POST /api/messages``; see the module's docstring."""

    def __init__(self, settings: Settings, hub: Callable[[], Hub]) -> None:
        self._key = None if settings.api_key is None else settings.api_key.encode("ascii")
        self._hub = hub
        #: Whole seconds after which a refused send may be tried again (one
        #: token of the send limit refills in ``1 / send_rate`` seconds).
        self._retry_after = str(max(1, math.ceil(1 / settings.send_rate))).encode()

    @staticmethod
    def serves(scope: Any) -> bool:
        """Whether a request is the API's (every method, so others get 405)."""
        return bool(scope["type"] == "http" and scope["path"] == API_PATH)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            status, answer = await self._serve(scope, receive)
        except _Refused as refused:
            body = {"error": refused.code, "message": refused.message}
            await _answer(scope, send, refused.status, body, refused.close, refused.headers)
        except _Gone:
            return
        else:
            await _answer(scope, send, status, answer)

    async def _serve(self, scope: Any, receive: Any) -> tuple[int, dict[str, Any]]:
        if self._key is None:
            raise _Refused(404, "not_found", "no server API here", close=True)
        if scope["method"] != "POST":
            raise _Refused(
                405, "bad_request", "POST only", close=True, headers=((b"allow", b"POST"),)
            )
        headers = scope["headers"]
        if not hmac.compare_digest(_presented_key(headers), self._key):
            raise _Refused(
                401,
                "unauthorized",
                "a valid Authorization: Bearer <api key> is required",
                close=True,
                headers=((b"www-authenticate", b'Bearer realm="quartchat"'),),
            )
        subject, nick, request = parse_post(await _read_body(headers, receive))
        try:
            outcome = await self._hub().post_api(subject, nick, request)
        except StoreError as exc:
            outcome = exc
        if isinstance(outcome, FrameError):
            retry = ((b"retry-after", self._retry_after),) if outcome.code == "rate_limited" else ()
            raise _Refused(
                STATUS_OF_CODE.get(outcome.code, 400), outcome.code, outcome.message, headers=retry
            )
        if isinstance(outcome, StoreError):
            raise _Refused(
                503,
                "unavailable",
                "the chat cannot store it now; retry with the same client_offset",
                headers=((b"retry-after", b"1"),),
            )
        return 200, {"id": outcome.message.id, "ts": outcome.message.ts}


class _Gone(Exception):
    """The client went away before its body arrived: nobody to answer."""


def _presented_key(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The bearer key of a request's ``Authorization`` (its first), or b""."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, key = value.strip().partition(b" ")
            return key.strip() if scheme.lower() == b"bearer" else b""
    return b""


async def _read_body(headers: list[tuple[bytes, bytes]], receive: Any) -> bytes:
    """The whole body, at most :data:`MAX_BODY` bytes within :data:`BODY_SECONDS`."""
    too_large = _Refused(413, "too_large", f"the body is over {MAX_BODY} bytes", close=True)
    for name, value in headers:
        if name.lower() == b"content-length" and int(value) > MAX_BODY:
            raise too_large  # hypercorn checked it is a number
    body = bytearray()
    with trio.move_on_after(BODY_SECONDS):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                raise too_large
            if not message.get("more_body", False):
                return bytes(body)
    raise _Refused(
        408, "too_slow", f"the body must arrive within {BODY_SECONDS:g} seconds", close=True
    )


def parse_post(body: bytes) -> tuple[str, str, Send]:
    """The account, the nick wanted for it, and the send a body asks for;
    ``400`` with the protocol's code (``bad_json``, ``bad_request``,
    ``bad_nick``, or a ``send``'s own: ``bad_offset``, ``empty``,
    ``too_long``) for anything a ``send`` frame or a JWT would not take."""
    try:
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):  # also bad UTF-8, and over 4300 digits
            raise FrameError("bad_json", "the body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise FrameError("bad_request", "the body must be a JSON object")
        subject, name = _author(obj.get("as"))
        if obj.get("to") is not None:
            raise FrameError("bad_request", "the server API posts to rooms: 'to' is not taken")
        # The send frame's own rules, on its own fields (any other value
        # is refused there as mistyped, without encoding what it holds).
        frame = {
            key: value if value is None or isinstance(value, str) else 0
            for key in ("client_offset", "text", "room")
            if (value := obj.get(key)) is not None
        }
        send = parse_frame(json.dumps({"type": "send", **frame}), rooms=True)
        assert isinstance(send, Send)
        nick = clean_nick(name) if name is not None else f"user-{secrets.token_hex(2)}"
    except FrameError as exc:
        raise _Refused(400, exc.code, exc.message) from None
    return subject, nick, send


def _author(value: object) -> tuple[str, str | None]:
    """``as``: the account's id (as a JWT's ``sub`` must be) and the name given."""
    if not isinstance(value, dict):
        raise FrameError("bad_request", "field 'as' must be an object with an 'id'")
    subject = value.get("id")
    if (
        not isinstance(subject, str)
        or not 0 < len(subject) <= MAX_SUBJECT
        or not is_scalar_text(subject)
        or "\x00" in subject
    ):
        raise FrameError("bad_request", f"field 'as.id' must be 1-{MAX_SUBJECT} characters")
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_WANTED_NAME):
        raise FrameError("bad_request", "field 'as.name' must be a string or null")
    return subject, name


async def _answer(
    scope: Any,
    send: Any,
    status: int,
    body: dict[str, Any],
    close: bool = False,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer JSON with the security headers every answer carries;
    ``close`` when the request's body was not read to its end."""
    host = next((v for n, v in scope["headers"] if n.lower() == b"host"), None)
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = as_asgi(security_headers(None if host is None else host.decode("latin-1")))
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
