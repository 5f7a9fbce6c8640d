"""One typed settings object, read once from the environment.

Every knob has a default that runs the chat on one process with SQLite. A bad
value fails at start with a :class:`ConfigError` that names the variable, so a
typo never turns into a silently different server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError
from .jwt_identity import check_secret, read_public_key

T = TypeVar("T")

#: Characters the server API's key must have at least: 32 random hex digits
#: are 128 bits, beyond guessing through a network.
MIN_API_KEY = 32


def _shipped_static_dir() -> Path:
    """The page and its assets, found through the package, never the working
    directory: an installed wheel has them as ``quartchat/static``; a checkout
    (an editable install) keeps them in the repository's top-level ``static/``."""
    package = Path(str(resources.files(__package__)))
    shipped = package / "static"
    return shipped if shipped.is_dir() else package.parent / "static"


DEFAULT_STATIC_DIR = _shipped_static_dir()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server can be told; see the README's table for meanings."""

    #: SQLite file that holds the log of record.
    db_path: Path = Path("chat.db")
    #: Messages sent on a first visit (``last_id`` null).
    backlog: int = 50
    #: Most messages replayed after a cursor; a larger gap gives ``recovered: false``.
    replay_limit: int = 500
    #: Largest ``limit`` a ``history`` request may ask for.
    history_max: int = 200
    #: History one user may read, in messages a second over all their sockets
    #: (and workers), and the burst above it. A page costs the ``limit`` it
    #: asks for, so the burst must hold at least one page of ``history_max``.
    #: 200/s is four pages of 50 a second, sustained; a burst of 5000 covers
    #: several tabs each filling a gap after a reconnect (the page asks for up
    #: to 3 pages of 200) and scrolling back, all at once. At about 30,000
    #: messages read per second per core, a burst is some 0.15 s of one core.
    history_rate: float = 200.0
    history_burst: int = 5000
    #: Rooms one user may create and invitations they may send, per second
    #: (over all their sockets and workers), and the burst: each makes a row
    #: that outlives the connection, so a flood is bounded by what it stores.
    #: One a minute, 20 at once: a team set up in a sitting, not a script.
    room_rate: float = 1 / 60
    room_burst: int = 20
    #: Server frames (one JSON object each) queued for one connection before it is
    #: cut with 4008. At ~300 bytes a message that is about 300 KiB per client.
    queue_size: int = 1000
    #: Frames per second one worker spends on all its connections together
    #: when busy: each connection then sends at most one frame per
    #: ``connections / flush_budget`` seconds (its flush window), and what
    #: arrives meanwhile goes out in that one frame. A frame costs about the
    #: same CPU whatever it holds, so this bounds the send work whatever the
    #: message rate; a quiet connection still sends at once.
    flush_budget: float = 9_000.0
    #: The longest a flush window grows (seconds), however many connections:
    #: the most a live frame waits on the server's side for the next one.
    flush_window_max: float = 0.15
    #: Origins allowed to open the socket besides the page's own (``*``: any).
    allowed_origins: tuple[str, ...] = ()
    #: The page's own origin(s), as browsers send them. Unset, the page's own
    #: origin is whatever matches the request's ``Host``: for a local trial only.
    public_origins: tuple[str, ...] = ()
    #: Serve ``GET /metrics``; off by default, as it tells anyone how busy the chat is.
    metrics: bool = False
    #: Run on hypercorn, wsproto or Quart versions the guards were not verified
    #: on, without the guards (:mod:`quartchat.patches`); off, such a server
    #: refuses to start.
    unguarded: bool = False
    #: Largest client frame in bytes; larger closes with 1009.
    max_frame_bytes: int = 64 * 1024
    #: Seconds a new socket has to send ``hello``.
    hello_timeout: float = 10.0
    #: Seconds a connection's socket may stay full, its peer acknowledging
    #: nothing, before the connection is dropped (a TCP reset) and its user
    #: counted out: a client that stopped reading. One that keeps reading,
    #: even slowly, is not cut (:mod:`quartchat.patches.stalled_writer`).
    write_stall: float = 10.0
    #: Seconds after the last ``typing`` before the server clears it.
    typing_timeout: float = 5.0
    #: Seconds a user whose last connection closed still counts as online, so
    #: a network blip that reconnects within it announces no leave and no join
    #: (0: announce the leave at once).
    leave_grace: float = 5.0
    #: Sustained messages per second one user may send, and the burst above it.
    send_rate: float = 10.0
    send_burst: int = 20
    #: Client frames of any kind per second per connection, and the burst.
    frame_rate: float = 50.0
    frame_burst: int = 100
    #: Bad frames tolerated per connection (refilled one per 2 s) before 1008.
    strikes: int = 10
    #: New identities (``hello`` without a token) per second per client address,
    #: and the burst: more close with 1008. 0.1/s is 6 a minute.
    new_identity_rate: float = 0.1
    new_identity_burst: int = 20
    #: Seconds after its creation an identity that never sent a message (nor
    #: got a private one) is deleted, once it is offline; checked every hour.
    silent_user_ttl: float = 86_400.0
    #: Folder with index.html and the page's assets.
    static_dir: Path = field(default=DEFAULT_STATIC_DIR)
    #: ``redis://host:port/db``: share the chat through Redis (any number of
    #: workers); None runs the embedded SQLite log in one process.
    redis_url: str | None = None
    #: Prefix of every Redis key, so several chats (or tests) share one Redis.
    redis_prefix: str = "quartchat:"
    #: Messages the Redis log keeps (approximately; older ones are trimmed);
    #: 0 keeps all. Cursors older than the log get ``recovered: false``.
    redis_max_messages: int = 0
    #: Seconds a worker counts as alive after its last heartbeat in Redis; a
    #: worker killed outright has its users go offline (with a leave) within
    #: this plus a quarter of it.
    redis_heartbeat_ttl: float = 10.0
    #: Logins vouched for by the deployment's backend (``hello`` with ``jwt``):
    #: an HS256 shared secret, or instead a PEM public key's file (RS256 for
    #: an RSA key, ES256 for an EC P-256 one). Neither: no JWT is accepted.
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: Path | None = None
    #: ``aud`` and ``iss`` every JWT must carry, when set.
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    #: Anonymous identities (a ``hello`` without ``jwt``); off, such a hello
    #: closes with 4003, and a JWT is the only way in.
    guests: bool = True
    #: The server API's bearer key (``POST /api/messages``, :mod:`quartchat.api`);
    #: unset, the API answers 404. At least :data:`MIN_API_KEY` characters.
    api_key: str | None = field(default=None, repr=False)
    #: The page's JWT hook: a path on the chat's own origin (``/auth/chat-jwt``)
    #: that answers ``{"jwt": "..."}`` for the visitor logged in to the
    #: deployment's site. The page reads it from index.html and logs in with
    #: that JWT, never putting it in a URL. Unset: anonymous tokens only.
    jwt_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``QUARTCHAT_*`` variables; raise :class:`ConfigError` on a bad one."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        d = cls()  # the defaults (a slotted class has no per-field class attributes)
        settings = cls(
            db_path=reader.get("QUARTCHAT_DB", Path, d.db_path),
            backlog=reader.get("QUARTCHAT_BACKLOG", _count, d.backlog),
            replay_limit=reader.get("QUARTCHAT_REPLAY_LIMIT", _positive, d.replay_limit),
            history_max=reader.get("QUARTCHAT_HISTORY_MAX", _positive, d.history_max),
            history_rate=reader.get("QUARTCHAT_HISTORY_RATE", _rate, d.history_rate),
            history_burst=reader.get("QUARTCHAT_HISTORY_BURST", _positive, d.history_burst),
            room_rate=reader.get("QUARTCHAT_ROOM_RATE", _rate, d.room_rate),
            room_burst=reader.get("QUARTCHAT_ROOM_BURST", _positive, d.room_burst),
            queue_size=reader.get("QUARTCHAT_QUEUE_SIZE", _positive, d.queue_size),
            flush_budget=reader.get("QUARTCHAT_FLUSH_BUDGET", _rate, d.flush_budget),
            flush_window_max=reader.get(
                "QUARTCHAT_FLUSH_WINDOW_MAX", _seconds_or_zero, d.flush_window_max
            ),
            allowed_origins=reader.get("QUARTCHAT_ALLOWED_ORIGINS", _origins, d.allowed_origins),
            public_origins=reader.get("QUARTCHAT_PUBLIC_ORIGIN", _public_origins, d.public_origins),
            metrics=reader.get("QUARTCHAT_METRICS", _flag, d.metrics),
            unguarded=reader.get("QUARTCHAT_UNGUARDED", _flag, d.unguarded),
            max_frame_bytes=reader.get("QUARTCHAT_MAX_FRAME", _positive, d.max_frame_bytes),
            hello_timeout=reader.get("QUARTCHAT_HELLO_TIMEOUT", _seconds, d.hello_timeout),
            write_stall=reader.get("QUARTCHAT_WRITE_STALL", _seconds, d.write_stall),
            typing_timeout=reader.get("QUARTCHAT_TYPING_TIMEOUT", _seconds, d.typing_timeout),
            leave_grace=reader.get("QUARTCHAT_LEAVE_GRACE", _seconds_or_zero, d.leave_grace),
            send_rate=reader.get("QUARTCHAT_SEND_RATE", _rate, d.send_rate),
            send_burst=reader.get("QUARTCHAT_SEND_BURST", _positive, d.send_burst),
            frame_rate=reader.get("QUARTCHAT_FRAME_RATE", _rate, d.frame_rate),
            frame_burst=reader.get("QUARTCHAT_FRAME_BURST", _positive, d.frame_burst),
            strikes=reader.get("QUARTCHAT_STRIKES", _positive, d.strikes),
            new_identity_rate=reader.get("QUARTCHAT_NEW_IDENTITY_RATE", _rate, d.new_identity_rate),
            new_identity_burst=reader.get(
                "QUARTCHAT_NEW_IDENTITY_BURST", _positive, d.new_identity_burst
            ),
            silent_user_ttl=reader.get("QUARTCHAT_SILENT_USER_TTL", _seconds, d.silent_user_ttl),
            static_dir=reader.get("QUARTCHAT_STATIC_DIR", Path, d.static_dir),
            redis_url=reader.get("QUARTCHAT_REDIS_URL", _redis_url, d.redis_url),
            redis_prefix=reader.get("QUARTCHAT_REDIS_PREFIX", str, d.redis_prefix),
            redis_max_messages=reader.get(
                "QUARTCHAT_REDIS_MAX_MESSAGES", _count, d.redis_max_messages
            ),
            redis_heartbeat_ttl=reader.get(
                "QUARTCHAT_REDIS_HEARTBEAT_TTL", _seconds, d.redis_heartbeat_ttl
            ),
            jwt_secret=reader.secret("QUARTCHAT_JWT_SECRET", check_secret, d.jwt_secret),
            jwt_public_key=reader.get("QUARTCHAT_JWT_PUBLIC_KEY", _public_key, d.jwt_public_key),
            jwt_audience=reader.get("QUARTCHAT_JWT_AUDIENCE", str, d.jwt_audience),
            jwt_issuer=reader.get("QUARTCHAT_JWT_ISSUER", str, d.jwt_issuer),
            guests=reader.get("QUARTCHAT_GUESTS", _flag, d.guests),
            api_key=reader.secret("QUARTCHAT_API_KEY", _api_key, d.api_key),
            jwt_url=reader.get("QUARTCHAT_JWT_URL", _jwt_url, d.jwt_url),
        )
        _check_jwt(settings)
        if settings.history_burst < settings.history_max:
            raise ConfigError(
                f"QUARTCHAT_HISTORY_BURST={settings.history_burst}: must be at least "
                f"QUARTCHAT_HISTORY_MAX ({settings.history_max}), or a full page is never served"
            )
        if not (settings.static_dir / "index.html").is_file():
            raise ConfigError(f"QUARTCHAT_STATIC_DIR: no index.html in {settings.static_dir}")
        return settings


def _check_jwt(settings: Settings) -> None:
    """The JWT settings make sense together: one key, and the rest only with it."""
    has_key = settings.jwt_secret is not None or settings.jwt_public_key is not None
    if settings.jwt_secret is not None and settings.jwt_public_key is not None:
        raise ConfigError(
            "QUARTCHAT_JWT_SECRET and QUARTCHAT_JWT_PUBLIC_KEY are both set: set one"
            " (the secret for HS256, or the key's file for RS256/ES256)"
        )
    for name, value in (
        ("QUARTCHAT_JWT_AUDIENCE", settings.jwt_audience),
        ("QUARTCHAT_JWT_ISSUER", settings.jwt_issuer),
    ):
        if value is not None and not has_key:
            raise ConfigError(
                f"{name}={value!r}: needs QUARTCHAT_JWT_SECRET or QUARTCHAT_JWT_PUBLIC_KEY"
            )
    if settings.jwt_url is not None and not has_key:
        raise ConfigError(
            f"QUARTCHAT_JWT_URL={settings.jwt_url!r}: needs QUARTCHAT_JWT_SECRET or"
            " QUARTCHAT_JWT_PUBLIC_KEY to check the JWTs it hands out"
        )
    if not settings.guests and not has_key:
        raise ConfigError(
            "QUARTCHAT_GUESTS=0 needs QUARTCHAT_JWT_SECRET or QUARTCHAT_JWT_PUBLIC_KEY:"
            " without guests, a JWT is the only way in"
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r}: {exc}") from None

    def secret(self, name: str, parse: Callable[[str], T], default: T) -> T:
        """As :meth:`get`, but an error never shows the value."""
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a number of seconds above 0")
    return value


def _seconds_or_zero(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return value


def _rate(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a rate above 0 per second")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and "://" not in origin:
            raise ValueError(f"{origin!r} is not an origin like https://chat.example.org")
    return origins


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must look like redis://host:6379/0 (or rediss://, unix://)")
    return raw


def _public_origins(raw: str) -> tuple[str, ...]:
    """Origins exactly as a browser sends them: scheme, host and port only."""
    origins = []
    for origin in _origins(raw):
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ValueError(f"{origin!r} is not an origin like https://chat.example.org")
        origins.append(origin.lower())
    return tuple(origins)


def _public_key(raw: str) -> Path:
    """A PEM public key's file, read now so a bad one stops the start."""
    path = Path(raw)
    read_public_key(path)
    return path


def _api_key(raw: str) -> str:
    """A bearer key a backend can send in a header, and long enough not to be guessed."""
    if len(raw) < MIN_API_KEY:
        raise ValueError(f"must be at least {MIN_API_KEY} characters (try: openssl rand -hex 32)")
    if not all("!" <= ch <= "~" for ch in raw):
        raise ValueError("must be printable ASCII without spaces (it travels in a header)")
    return raw


#: What a JWT URL may hold: a path (and query) of URL characters, nothing the
#: page's HTML or a browser could read as something else.
_JWT_URL = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*")
MAX_JWT_URL = 2000


def _jwt_url(raw: str) -> str:
    """A path on the chat's own origin: the page's content security policy
    lets it fetch nothing else, and a relative path cannot send the visitor's
    cookies to another site."""
    if len(raw) > MAX_JWT_URL or not _JWT_URL.fullmatch(raw):
        raise ValueError(
            "must be a path on the chat's own origin, like /auth/chat-jwt"
            " (starting with one /, URL characters only)"
        )
    return raw


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError("must be 1 or 0 (also true/false, yes/no, on/off)")
    return value in ("1", "true", "yes", "on")
