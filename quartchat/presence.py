"""Who is online: users, not connections, and the nicks they hold.

Pure bookkeeping with no I/O and no awaits, so the hub can update it from a
``finally`` block of a cancelled handler. Nicks are unique among online users:
no two share a key of :func:`~quartchat.text.nick_keys` (case and look-alike
characters aside, they would read the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .models import User
from .protocol import MAX_NICK, EncodedUsers, user_json
from .text import nick_keys

#: A connection as the caller names it: the hub's per-process number, or a
#: :data:`quartchat.backends.base.ConnId` unique across workers.
ConnKey = int | str


def nick_variants(nick: str) -> Iterator[str]:
    """``nick``, then ``nick-2``, ``nick-3``... each cut to fit ``MAX_NICK``."""
    yield nick
    n = 1
    while True:
        n += 1
        suffix = f"-{n}"
        yield nick[: MAX_NICK - len(suffix)] + suffix


@dataclass(slots=True)
class _Online:
    user: User
    conns: set[ConnKey] = field(default_factory=set)


class Presence:
    def __init__(self) -> None:
        self._users: dict[str, _Online] = {}
        self._nick_holders: dict[str, str] = {}
        #: Each online user encoded, in the order of ``_users``: a welcome's
        #: online list is their join (see :meth:`listed`).
        self._fragments: dict[str, str] = {}
        #: That join, until the next join, leave or rename.
        self._listed: EncodedUsers | None = None

    def __len__(self) -> int:
        return len(self._users)

    def online(self) -> list[User]:
        return [entry.user for entry in self._users.values()]

    def listed(self) -> EncodedUsers:
        """:meth:`online`, encoded as a welcome carries it. Each user is
        encoded once, when they come online or change nick; the list is a
        join of those fragments, kept until the next change."""
        if self._listed is None:
            self._listed = EncodedUsers.join(self._fragments.values())
        return self._listed

    def get(self, user_id: str) -> User | None:
        entry = self._users.get(user_id)
        return None if entry is None else entry.user

    def is_free(self, nick: str, user_id: str | None) -> bool:
        """True when no other online user holds ``nick`` or one like it."""
        return all(self._nick_holders.get(key, user_id) == user_id for key in nick_keys(nick))

    def free_variant(self, nick: str, user_id: str | None) -> str:
        """``nick`` itself if free, else the first free ``nick-2``, ``nick-3``..."""
        return next(c for c in nick_variants(nick) if self.is_free(c, user_id))

    def add(self, conn_id: ConnKey, user: User) -> bool:
        """Count a connection; True when it is the user's first (a join).

        The user's nick must be free (see :meth:`free_variant`).
        """
        entry = self._users.get(user.id)
        first = entry is None
        if entry is None:
            entry = self._users[user.id] = _Online(user)
            self._claim(user)
        entry.conns.add(conn_id)
        return first

    def is_last(self, conn_id: ConnKey, user_id: str) -> bool:
        """True when ``conn_id`` is the user's only connection."""
        entry = self._users.get(user_id)
        return entry is not None and entry.conns == {conn_id}

    def remove(self, conn_id: ConnKey, user_id: str) -> User | None:
        """Forget a connection; return the user when it was their last (a leave)."""
        entry = self._users.get(user_id)
        if entry is None or conn_id not in entry.conns:
            return None
        entry.conns.discard(conn_id)
        if entry.conns:
            return None
        del self._users[user_id]
        self._release(entry.user)
        return entry.user

    def rename(self, user_id: str, nick: str) -> User:
        """Give an online user a (free) nick; return the user as it was."""
        entry = self._users[user_id]
        old = entry.user
        self._release(old)
        entry.user = User(user_id, nick)
        self._claim(entry.user)
        return old

    def _claim(self, user: User) -> None:
        """Hold the user's nick, and list them (their first connection, or a rename)."""
        for key in nick_keys(user.nick):
            self._nick_holders[key] = user.id
        self._fragments[user.id] = user_json(user)
        self._listed = None

    def _release(self, user: User) -> None:
        for key in nick_keys(user.nick):
            if self._nick_holders.get(key) == user.id:
                del self._nick_holders[key]
        if user.id not in self._users:  # gone, not renamed: no longer listed
            del self._fragments[user.id]
        self._listed = None
