"""quartchat: a real-time chat server on Trio, with no message lost or repeated.

``quartchat:app`` is the ASGI app hypercorn serves, built from the
environment's ``QUARTCHAT_*`` settings when the package is imported (a bad
setting stops the server at start, naming the variable).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["app", "create_app"]

app = create_app()
