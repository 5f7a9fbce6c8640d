"""The frames Quart-Trio has already queued for a WebSocket, taken without waiting.

Quart-Trio hands Quart's websocket the ``receive`` of the memory channel it
queues the socket's frames in; Quart keeps it as the private ``_receive``.
A session takes what is already there with ``receive_nowait`` so that sends
arriving together share one commit (:mod:`quartchat.session`). Only once
:func:`quartchat.patches.apply` found the verified versions; otherwise, or
if the name moved, every frame is read the public way, one await each.
"""

from __future__ import annotations

import trio
from quart.wrappers import Websocket

from . import applied


def queued_frames(socket: Websocket) -> trio.MemoryReceiveChannel[str | bytes] | None:
    """The channel holding ``socket``'s frames not yet read, or None."""
    if not applied():
        return None
    channel = getattr(getattr(socket, "_receive", None), "__self__", None)
    return channel if isinstance(channel, trio.MemoryReceiveChannel) else None
