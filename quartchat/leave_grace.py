"""Leaves, announced once a user is really gone.

A user whose last connection closes stays online (in the list, holding
their nick) for ``leave_grace`` seconds. Coming back within it, on any
worker, announces nothing; otherwise the leave is announced when it ends.
Users gone with a dead worker, and users back after this worker was taken
for dead, are announced here too: every leave and rejoin that no connection
of this worker opened or closed.
"""

from __future__ import annotations

import logging

import trio

from .announcer import Announcer
from .backends.base import PresenceBoard
from .errors import StoreError
from .protocol import PresenceNotice

log = logging.getLogger(__name__)


class LeaveGrace:
    def __init__(self, grace: float, presence: PresenceBoard, announcer: Announcer) -> None:
        #: Seconds a user with no connection left stays online.
        self._grace = grace
        self._presence = presence
        self._announcer = announcer
        #: Users whose last connection here closed, waiting out the grace.
        self._graces: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Announce the leaves and returns of other workers' doing, and hold
        the nursery the graces run in; until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._announce_departures)
            nursery.start_soon(self._announce_returns)
            self._nursery = nursery
            task_status.started()

    async def start(self, user_id: str) -> None:
        """The user's last connection anywhere closed: announce their leave
        once the grace is over (at once when there is no grace, or the
        server is stopping)."""
        scope = trio.CancelScope()
        if self._grace > 0 and self._nursery is not None:
            try:
                self._nursery.start_soon(self._depart_after_grace, user_id, scope)
            except RuntimeError:  # the nursery is closed: the server is stopping
                pass
            else:
                self.end(user_id)
                self._graces[user_id] = scope
                return
        await self._depart(user_id)

    def end(self, user_id: str) -> None:
        """The user is back: their grace, if any, ends without a leave."""
        scope = self._graces.pop(user_id, None)
        if scope is not None:
            scope.cancel()

    async def _depart_after_grace(self, user_id: str, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self._grace)
        if self._graces.get(user_id) is not scope:
            return  # back within the grace, or another grace took over
        del self._graces[user_id]
        try:
            await self._depart(user_id)
        except StoreError as exc:
            log.warning("could not take %s offline: %s", user_id, exc)

    async def _depart(self, user_id: str) -> None:
        gone = await self._presence.depart_if_idle(user_id)
        if gone is not None:
            self._announcer.announce(PresenceNotice("leave", gone), skip_user=user_id)

    async def _announce_departures(self) -> None:
        """Leaves for users whose connections died with another worker."""
        async for users in self._presence.departed():
            for user in users:
                self._announcer.announce(PresenceNotice("leave", user), skip_user=user.id)

    async def _announce_returns(self) -> None:
        """Joins for users of this worker who were taken offline while it was
        taken for dead (late heartbeats), now that it is counted again."""
        async for users in self._presence.returned():
            for user in users:
                self._announcer.announce(PresenceNotice("join", user), skip_user=user.id)
