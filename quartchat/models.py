"""Plain records shared by the store, the hub and the protocol: no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    id: str
    nick: str


@dataclass(frozen=True, slots=True)
class Draft:
    """A message a client asked to store, not yet committed."""

    sender: User
    client_offset: str
    text: str
    recipient: User | None
    #: The connection that sent it (a :data:`~quartchat.backends.base.ConnId`),
    #: so it alone gets no echo; it rides the log's tail, not its history.
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """A committed message: ``id`` is its place in the log."""

    id: int
    sender: User
    recipient: User | None
    text: str
    ts: int


@dataclass(frozen=True, slots=True)
class Posted:
    """What storing a draft gave: the message, and whether it was a retry."""

    message: Message
    duplicate: bool
