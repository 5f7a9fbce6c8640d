"""The security headers on the answers hypercorn writes by itself.

hypercorn answers some requests without asking the app: 400 for a request
h11 cannot parse, 431 for a header block over its limit, 501 for a
``Transfer-Encoding`` it does not support, 404 for a host it does not serve,
400 for a broken WebSocket handshake, 500 when the app answered nothing.
Those answers carried none of :func:`quartchat.headers.security_headers`.
Every HTTP/1.1 response head hypercorn sends goes through
``H11Protocol._send_h11_event``; the wrapper adds the headers to a response
that lacks them (the app's own answers already have them, and keep theirs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

import h11
from hypercorn.protocol.h11 import H11Protocol

from ..headers import as_asgi, security_headers

#: The headers of an answer that names no host (it may have come from a
#: request h11 could not read): ``connect-src 'self'`` only.
ERROR_HEADERS = as_asgi(security_headers(None))
_POLICY = b"content-security-policy"


def install() -> None:
    """Wrap ``H11Protocol._send_h11_event`` (hypercorn 0.18.0)."""
    H11Protocol._send_h11_event = _with_security_headers(  # type: ignore[method-assign, assignment]
        H11Protocol._send_h11_event
    )


def with_security_headers(response: h11.Response) -> h11.Response:
    """``response``, with :data:`ERROR_HEADERS` added unless it has a policy already."""
    if any(name == _POLICY for name, _ in response.headers):
        return response
    return h11.Response(
        status_code=response.status_code,
        headers=[*response.headers, *ERROR_HEADERS],
        reason=response.reason,
    )


def _with_security_headers(
    send_event: Callable[[H11Protocol, Any], Coroutine[Any, Any, None]],
) -> Callable[[H11Protocol, Any], Coroutine[Any, Any, None]]:
    @functools.wraps(send_event)
    async def send_with_headers(protocol: H11Protocol, event: Any) -> None:
        if type(event) is h11.Response:  # a final answer's head, not a 1xx nor body
            event = with_security_headers(event)
        await send_event(protocol, event)

    return send_with_headers
