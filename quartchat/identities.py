"""Who a ``hello`` is, and what they are called.

A ``hello`` with a token is looked up; one with a ``jwt`` is the user of
the account the deployment's backend vouches for (:mod:`.jwt_identity`);
one with neither makes a new identity (counted against its address's
allowance), unless guests are off. Nicks are cleaned here, claimed
on the presence board (unique among online users), announced, then stored.
Identities that never said anything are pruned, as every tokenless ``hello``
makes one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from .announcer import Announcer
from .backends.base import Identities, PresenceBoard, RateLimits
from .config import Settings
from .errors import (
    POLICY_VIOLATION,
    UNKNOWN_TOKEN,
    CloseConnection,
    ConfigError,
    FrameError,
    StoreError,
)
from .jwt_identity import JwtVerifier, refused
from .models import User
from .protocol import Hello, PresenceNotice, clean_nick
from .store import BUSY_TIMEOUT_MS, now_ms

log = logging.getLogger(__name__)

#: Seconds a nick change waits for the log's writer: three times SQLite's busy
#: timeout, so only a log that is stuck, not one that is busy, is given up on.
NICK_SAVE_TIMEOUT = 3 * BUSY_TIMEOUT_MS / 1000
#: Seconds between two prunings of silent users.
PRUNE_INTERVAL = 3600.0


@dataclass(slots=True)
class Identity:
    """Who a ``hello`` turned out to be, before they are counted online."""

    stored: User
    #: The welcome's token; None for a user who came with a JWT, whom only a
    #: JWT logs in (a token would outlive the JWT's ``exp``).
    token: str | None
    wanted_nick: str | None
    errors: list[FrameError] = field(default_factory=list)
    #: The JWT's ``roles`` holds ``admin``: a chat-wide admin for this session.
    admin: bool = False


#: Who pruning must keep besides those online (the chat's admins).
Spared = Callable[[], Awaitable[list[str]]]


async def _nobody() -> list[str]:
    return []


class IdentityDesk:
    def __init__(
        self,
        settings: Settings,
        identities: Identities,
        presence: PresenceBoard,
        limits: RateLimits,
        announcer: Announcer,
    ) -> None:
        self._settings = settings
        self._identities = identities
        self._presence = presence
        self._limits = limits
        self._announcer = announcer
        try:
            self._jwt = JwtVerifier.configured(
                settings.jwt_secret,
                settings.jwt_public_key,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        except ValueError as exc:
            raise ConfigError(f"JWT settings: {exc}") from None

    async def identify(self, hello: Hello, address: str | None) -> Identity:
        """Look up or create the user of a ``hello``; 4003 for an unknown token,
        a refused JWT, or no JWT when guests are off; 1008 when ``address``
        asked for too many new identities."""
        if hello.jwt is not None:
            return await self._identify_jwt(hello, hello.jwt)
        if not self._settings.guests:
            raise CloseConnection(UNKNOWN_TOKEN, "this chat takes logins by jwt only")
        errors: list[FrameError] = []
        wanted = _wanted_nick(hello.nick, hello.nick_exact, errors)
        if hello.token is not None:
            user = await self._identities.user_by_token(hello.token)
            if user is None:
                raise CloseConnection(UNKNOWN_TOKEN, "unknown token")
            return Identity(user, hello.token, wanted, errors)
        settings = self._settings
        if address is not None and not await self._limits.take(
            f"identity:{address}", settings.new_identity_rate, settings.new_identity_burst
        ):
            raise CloseConnection(POLICY_VIOLATION, "too many new identities; retry later")
        nick = wanted if wanted is not None else f"guest-{secrets.token_hex(2)}"
        user, token = await self._identities.create_user(nick)
        return Identity(user, token, wanted, errors)

    async def _identify_jwt(self, hello: Hello, token: str) -> Identity:
        """The user of the account a JWT vouches for, made at its first login.
        The token's ``name`` is the nick wanted (the hello's ``nick`` when it
        has none), under the usual nick rules. Nothing is stored unless the
        token is good; a hello with a ``token`` too is refused, as it names
        two identities."""
        if hello.token is not None:
            raise CloseConnection(UNKNOWN_TOKEN, "a hello takes a token or a jwt, not both")
        if self._jwt is None:
            raise refused("this chat is not set up for JWTs")
        claims = self._jwt.verify(token)
        errors: list[FrameError] = []
        raw = claims.name if claims.name is not None else hello.nick
        wanted = _wanted_nick(raw, hello.nick_exact, errors)
        nick = wanted if wanted is not None else f"user-{secrets.token_hex(2)}"
        user = await self._identities.user_for_subject(claims.subject, nick)
        return Identity(user, None, wanted, errors, admin=claims.admin)

    async def check_exact_nick(self, hello: Hello) -> None:
        """Raise ``nick_taken`` for a new user's ``nick_exact`` hello whose nick
        is held, before anything is stored, claimed or announced."""
        if (
            hello.nick_exact
            and hello.nick is not None
            and hello.token is None
            and hello.jwt is None
        ):
            nick = clean_nick(hello.nick)
            if not await self._presence.is_free(nick, None):
                raise nick_taken(nick)

    async def rename(self, user_id: str, raw_nick: str) -> None:
        """Change an online user's nick, tell everyone, then persist it."""
        nick = clean_nick(raw_nick)
        current = await self._presence.get(user_id)
        assert current is not None, "a session renames only while attached"
        user = await self.rename_online(current, nick)
        if user != current:
            await self.save_nick(user)

    async def rename_online(self, current: User, nick: str) -> User:
        """Claim ``nick`` for an online user and announce it; ``nick_taken``
        when someone else holds it."""
        if nick == current.nick:
            return current
        old = await self._presence.rename(current.id, nick)
        if old is None:
            raise nick_taken(nick)
        user = User(current.id, nick)
        self._announcer.announce(PresenceNotice("nick", user, old_nick=old.nick), skip_user=None)
        return user

    async def save_nick(self, user: User) -> None:
        """Store a nick that presence already announced.

        Shielded, so a client leaving meanwhile cannot leave the log behind
        what everyone was told; bounded, so a stuck log cannot hold the
        connection open without end (then the nick is in force until the
        user leaves, and the stored one comes back on their next visit)."""
        with trio.CancelScope(shield=True), trio.move_on_after(NICK_SAVE_TIMEOUT) as bound:
            await self._identities.set_nick(user.id, user.nick)
        if bound.cancelled_caught:
            log.warning("gave up storing the nick of %s after %s s", user.id, NICK_SAVE_TIMEOUT)

    async def prune_silent_users(self, spared: Spared = _nobody) -> None:
        """Delete identities that never said anything, at start and then every
        :data:`PRUNE_INTERVAL` (or ``silent_user_ttl`` if shorter): every
        ``hello`` without a token makes one, so they would pile up forever.
        Those online are kept, and those ``spared`` names (the admins)."""
        ttl = self._settings.silent_user_ttl
        while True:
            try:
                kept = [user.id for user in await self._presence.online()]
                kept += await spared()
                pruned = await self._identities.prune_silent_users(now_ms() - int(ttl * 1000), kept)
            except StoreError:
                log.exception("could not prune silent users; trying again later")
            else:
                if pruned:
                    log.info("pruned %d users who never sent a message", pruned)
            await trio.sleep(min(ttl, PRUNE_INTERVAL))


def _wanted_nick(raw: str | None, exact: bool, errors: list[FrameError]) -> str | None:
    """``raw`` cleaned by the nick rules, or None; a bad one raises when
    ``exact``, else its error goes into ``errors`` and no nick is wanted."""
    if raw is None:
        return None
    try:
        return clean_nick(raw)
    except FrameError as exc:
        if exact:
            raise
        errors.append(exc)
        return None


def nick_taken(nick: str) -> FrameError:
    """The error for a nick someone else holds."""
    return FrameError("nick_taken", f"the nickname {nick!r} is in use")
