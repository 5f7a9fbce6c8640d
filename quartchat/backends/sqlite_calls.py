"""The calls a seam makes on the chat's SQLite store, counted so it closes cleanly.

The room directory and the moderation board share the log's
:class:`~quartchat.store.AsyncStore` (its threads and limiters); each closes
before the log does, refusing new calls and waiting for those running, so
the store is never closed under one of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import trio

from ..errors import StoreError
from ..store import AsyncStore

T = TypeVar("T")


class StoreCalls:
    def __init__(self, store: AsyncStore, name: str) -> None:
        self.store = store
        #: What the refusal after ``aclose`` names ("the room directory").
        self._name = name
        self._closing = False
        self._running = 0
        self._idle = trio.Event()

    async def aclose(self) -> None:
        """Refuse new calls, wait for those running (the store is the log's
        to close, after this)."""
        self._closing = True
        if self._running:
            await self._idle.wait()

    @contextmanager
    def _call(self) -> Iterator[None]:
        if self._closing:
            raise StoreError(f"{self._name} is closed")
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            if self._closing and not self._running:
                self._idle.set()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction on the store's writer thread."""
        with self._call():
            return await self.store.write(fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on one of the store's reader threads."""
        with self._call():
            return await self.store.read(fn)
