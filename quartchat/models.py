"""Plain records shared by the store, the hub and the protocol: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class User:
    id: str
    nick: str

    def ref(self) -> dict[str, str]:
        """The ``{"id", "nick"}`` form frames carry."""
        return {"id": self.id, "nick": self.nick}


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

    def body(self) -> dict[str, Any]:
        """The message as ``history`` and ``message`` frames carry it (no ``type``)."""
        return {
            "id": self.id,
            "from": self.sender.ref(),
            "to": None if self.recipient is None else self.recipient.ref(),
            "text": self.text,
            "ts": self.ts,
        }

    def frame(self) -> dict[str, Any]:
        """The live and replayed ``message`` frame."""
        return {"type": "message", **self.body()}


@dataclass(frozen=True, slots=True)
class Posted:
    """What storing a draft gave: the message, and whether it was a retry."""

    message: Message
    duplicate: bool
