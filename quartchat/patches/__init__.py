"""Everything quartchat changes or reads inside hypercorn, wsproto and Quart.

The server's stack has faults any client can trigger, and costs quartchat
cuts by writing to hypercorn's socket itself; both mean reaching into
private names that an upgrade may move. That code lives in this folder only,
and :func:`apply` switches it on in one place, when the server starts
(``create_app``, which both the ``quartchat`` command and ``hypercorn …
quartchat:app`` run), never as a side effect of an import:

- :mod:`.hypercorn_faults`: one connection's failure stays its own
  (hypercorn#225), rejected frames close with their RFC 6455 code,
  permessage-deflate is declined, a closed connection is freed at once.
- :mod:`.ping_wheel`: one timer pings every WebSocket of a worker.
- :mod:`.direct_send`: a session's frames go straight to hypercorn's socket.
- :mod:`.quart_receive`: a session takes the frames Quart-Trio has already
  queued without waiting.
- :mod:`.handshake_refusals`: a handshake hypercorn refuses ends at once,
  its 400 alone on the wire (no racing 101, no traceback).
- :mod:`.error_headers`: hypercorn's own error answers carry the security
  headers.
- :mod:`.frame_limit`: a message over the size limit closes TCP after its
  1009, and nothing more of it is read.
- :mod:`.stalled_writer`: a socket that takes nothing for
  ``QUARTCHAT_WRITE_STALL`` seconds is reset, so a client that stops reading
  cannot hold a connection (and its user online) for ever.

Each was verified on exactly the versions in :data:`VERIFIED`, which are the
only ones ``pyproject.toml`` allows. Someone who forces another version gets
a server that refuses to start (:class:`~quartchat.errors.ConfigError`, one
line naming what was found) unless ``QUARTCHAT_UNGUARDED=1`` says to run
without any of these on purpose; then nothing is patched, and a warning
says what that reopens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import version

from ..config import Settings
from ..errors import ConfigError

log = logging.getLogger(__name__)

#: The versions every module here was verified on, by the tests the README's
#: "Known dependency faults" table names. Quart is read (not patched) by
#: :mod:`.quart_receive`; both its versions are the ones CI runs.
VERIFIED: Mapping[str, frozenset[str]] = {
    "hypercorn": frozenset({"0.18.0"}),
    "wsproto": frozenset({"1.3.2"}),
    "quart": frozenset({"0.19.9", "0.22.0"}),
}
#: The setting that runs the server on unverified versions, without the patches.
UNGUARDED_SETTING = "QUARTCHAT_UNGUARDED"

_applied = False


def installed_versions() -> dict[str, str]:
    """The installed version of each package in :data:`VERIFIED`."""
    return {name: version(name) for name in VERIFIED}


def unverified(found: Mapping[str, str]) -> list[str]:
    """``name version`` of each package in ``found`` not on its verified list."""
    return [f"{name} {found[name]}" for name in VERIFIED if found[name] not in VERIFIED[name]]


def check(found: Mapping[str, str], *, unguarded: bool) -> bool:
    """True if ``found`` is verified. Otherwise raise :class:`ConfigError`,
    or, when ``unguarded`` asks to run anyway, warn and return False."""
    wrong = unverified(found)
    if not wrong:
        return True
    verified = ", ".join(f"{name} {' or '.join(sorted(v))}" for name, v in VERIFIED.items())
    if not unguarded:
        raise ConfigError(
            f"{', '.join(wrong)} installed, but quartchat's guards were verified on {verified};"
            f" install those, or set {UNGUARDED_SETTING}=1 to run without the guards"
        )
    log.warning(
        "%s=1 and %s installed: running WITHOUT quartchat's guards, so one malformed packet"
        " may stop the server (pgjones/hypercorn#225), a rejected frame closes with 1006 and"
        " permessage-deflate is accepted (README: Known dependency faults)",
        UNGUARDED_SETTING,
        ", ".join(wrong),
    )
    return False


def apply(settings: Settings | None = None) -> bool:
    """Switch every patch on, once per process, if the installed versions are
    verified (see :func:`check`; ``settings.unguarded`` runs without them).
    True when they are on. The patches' own settings (the write-stall bound)
    are taken from ``settings`` on every call."""
    global _applied
    settings = settings if settings is not None else Settings()
    if not _applied and not check(installed_versions(), unguarded=settings.unguarded):
        return False
    from . import (
        error_headers,
        frame_limit,
        handshake_refusals,
        hypercorn_faults,
        ping_wheel,
        stalled_writer,
    )

    stalled_writer.set_write_stall(settings.write_stall)
    if _applied:
        return True
    hypercorn_faults.install()
    ping_wheel.install()
    handshake_refusals.install()
    error_headers.install()
    frame_limit.install()
    stalled_writer.install()
    _applied = True
    return True


def applied() -> bool:
    """True once :func:`apply` switched the patches on in this process."""
    return _applied
