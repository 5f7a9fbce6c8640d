"""The security headers every answer carries: the app's own, its WebSocket
refusals (:mod:`quartchat.app`) and the errors hypercorn answers by itself
(:mod:`quartchat.patches.error_headers`)."""

from __future__ import annotations

import re

#: A ``Host`` header fit to be named in a header: a name or an IP literal, and a port.
HOST_PATTERN = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def security_headers(host: str | None) -> dict[str, str]:
    """What every response tells the browser: the page runs only its own
    scripts and styles, talks only to its own server (its socket included;
    older browsers do not count ws: as 'self'), and is never framed."""
    connect = "'self'"
    if host is not None and HOST_PATTERN.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def as_asgi(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI and hypercorn carry them: lower-case byte pairs."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
