"""This worker's view of the mutes, bans and admins in force.

A send is checked for a mute without a round trip: the view holds every
sanction in force (there are few), read from the
:class:`~quartchat.backends.moderation.ModerationBoard` when the worker
starts. A sanction imposed (or lifted) on any worker is announced on the
event bus (:meth:`SanctionsView.announce`), and every worker's view applies
it as it arrives, before the notices published after it; and every
:data:`REFRESH_SECONDS` each view reads the board again, so one whose
announcement was lost (the bus is a hint) holds within that time.

A ban found new at a refresh (or applied here) closes every connection of
the user on this worker with 4009, through the broker: every worker does the
same, so the user is gone from the whole chat within a refresh, and the
``hello`` check (:meth:`SanctionsView.admit`) keeps them out. The view
also says who is an admin: those ``quartchat admin grant`` named, and the
connections whose JWT did.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

import trio

from .backends.base import EventBus
from .backends.moderation import ModerationBoard, Sanction
from .broker import CloseOrder, Event, LocalBroker
from .errors import BANNED, CloseConnection, StoreError
from .log_limits import limit

log = logging.getLogger(__name__)
# A store that is away fails every refresh, twice a second: one line a second.
limit(log)

#: How often each worker reads the sanctions in force: the longest a ban
#: imposed elsewhere takes to close a connection here when its announcement
#: on the bus was lost (the issue asks for one second), and a mute to hold.
REFRESH_SECONDS = 0.5


#: How long an announced sanction is kept to be laid over refreshes that
#: began before it (far longer than one read of the board takes).
APPLIED_KEPT_SECONDS = 10.0

SanctionKey = tuple[str, str, str | None]


def now_ms() -> int:
    return int(time.time() * 1000)


def banned_reason(ban: Sanction) -> str:
    """The close reason a banned user is given (at most 123 bytes, as a close frame allows)."""
    if ban.until is None:
        return "banned"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ban.until / 1000))
    return f"banned until {when}"


class SanctionsView:
    def __init__(self, board: ModerationBoard, broker: LocalBroker, bus: EventBus) -> None:
        self._board = board
        self._broker = broker
        self._bus = bus
        broker.subscribe(self._heard)
        #: (kind, user, room) to the sanction in force.
        self._sanctions: dict[SanctionKey, Sanction] = {}
        #: Sanctions applied as announced, with when: a refresh that began
        #: before one may have read the board without it.
        self._applied: dict[SanctionKey, tuple[float, Sanction]] = {}
        #: Users made admins with ``quartchat admin grant``.
        self._admins: frozenset[str] = frozenset()
        #: Connections whose JWT named their user an admin: the session's own
        #: standing, which a later token without the role does not have.
        self._admin_conns: set[str] = set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the view, then refresh it until cancelled; a refresh that
        fails keeps the view as it was (and says so, a line a second at most)."""
        await self.refresh()
        task_status.started()
        while True:
            await trio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except StoreError as exc:
                log.warning("could not refresh the sanctions in force: %s", exc)

    async def refresh(self) -> None:
        started = trio.current_time()
        sanctions = await self._board.in_force(now_ms())
        self._admins = frozenset(await self._board.admins())
        self._replace(sanctions, started)

    def _replace(self, sanctions: Iterable[Sanction], started: float) -> None:
        """Hold ``sanctions`` (the board's, read from ``started`` on) and,
        on top, those applied since ``started``, which the read may have missed."""
        fresh: dict[SanctionKey, Sanction] = {(s.kind, s.user, s.room): s for s in sanctions}
        for key, (applied, sanction) in list(self._applied.items()):
            if applied < started - APPLIED_KEPT_SECONDS:
                del self._applied[key]
            elif applied >= started:
                fresh.pop(key, None)
                if sanction.in_force(now_ms()):
                    fresh[key] = sanction
        for key, sanction in fresh.items():
            if sanction.kind == "ban" and key not in self._sanctions:
                self._close_banned(sanction)
        self._sanctions = fresh

    def announce(self, sanction: Sanction) -> None:
        """Tell every worker's view (this one's at once) of a sanction the
        board now holds."""
        record = {
            "kind": sanction.kind,
            "user": sanction.user,
            "room": sanction.room,
            "until": sanction.until,
            "by": sanction.by,
        }
        self._bus.publish(Event(line="", only_users=frozenset(), sanction=json.dumps(record)))

    def _heard(self, event: Event) -> None:
        """The broker's watcher: apply the sanctions announced on the bus."""
        if event.sanction is None:
            return
        try:
            record = json.loads(event.sanction)
            self.apply(Sanction(**record))
        except (ValueError, TypeError) as exc:
            log.warning("ignored an unreadable sanction on the bus: %s", exc)

    def apply(self, sanction: Sanction) -> None:
        """Hold a sanction imposed (or lifted) at once, before the next
        refresh reads it back."""
        key = (sanction.kind, sanction.user, sanction.room)
        self._applied[key] = (trio.current_time(), sanction)
        if sanction.in_force(now_ms()):
            if sanction.kind == "ban":
                self._close_banned(sanction)
            self._sanctions[key] = sanction
        else:
            self._sanctions.pop(key, None)

    def _close_banned(self, ban: Sanction) -> None:
        self._broker.publish(
            CloseOrder(
                line="",
                only_users=frozenset((ban.user,)),
                code=BANNED,
                reason=banned_reason(ban),
            )
        )

    def muted(self, user_id: str, room: str | None) -> Sanction | None:
        """The mute that keeps ``user_id`` from sending in ``room`` (a
        chat-wide one, or that room's), or None."""
        if not self._sanctions:  # the usual case: no clock read per send
            return None
        now = now_ms()
        for key in (("mute", user_id, None), ("mute", user_id, room)):
            mute = self._sanctions.get(key)
            if mute is not None and mute.in_force(now):
                return mute
        return None

    def banned(self, user_id: str) -> Sanction | None:
        ban = self._sanctions.get(("ban", user_id, None))
        return ban if ban is not None and ban.in_force(now_ms()) else None

    def is_admin(self, conn_id: str, user_id: str) -> bool:
        """Whether the connection is an admin's: its JWT said so, or
        ``quartchat admin grant`` named its user."""
        return conn_id in self._admin_conns or user_id in self._admins

    async def admit(self, conn_id: str, user_id: str, jwt_admin: bool) -> bool:
        """Let a session in unless its user is banned (4009: the board itself
        is asked, so a ban imposed a moment ago on another worker keeps them
        out too); whether it is an admin's (see :meth:`is_admin`)."""
        ban = await self._board.ban_of(user_id, now_ms())
        if ban is None:
            ban = self.banned(user_id)
        if ban is not None:
            raise CloseConnection(BANNED, banned_reason(ban))
        if jwt_admin:
            self._admin_conns.add(conn_id)
        return self.is_admin(conn_id, user_id)

    def closed(self, conn_id: str) -> None:
        self._admin_conns.discard(conn_id)
