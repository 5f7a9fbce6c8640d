"""quartchat: a real-time chat server on Trio, with no message lost or repeated.

``quartchat:app`` is the ASGI app hypercorn serves. It is built from the
environment's ``QUARTCHAT_*`` settings on its first call (the lifespan
startup), so importing ``quartchat.store`` or ``quartchat.protocol`` alone
loads no web framework, no server and reads no settings. A bad setting
fails the startup with a message naming the variable, and hypercorn exits.
Building the app switches on the guards against hypercorn's faults
(:mod:`quartchat.patches`), not importing the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quart_trio import QuartTrio

__all__ = ["app"]


class _App:
    """The ASGI entry point: builds the Quart-Trio app once, then delegates."""

    def __init__(self) -> None:
        self._app: QuartTrio | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from .app import create_app
            from .errors import ConfigError

            try:
                self._app = create_app()
            except ConfigError as exc:
                if scope["type"] != "lifespan":
                    raise
                await receive()  # lifespan.startup
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
        await self._app(scope, receive, send)


app = _App()
