"""``python -m quartchat``: see :mod:`quartchat.cli`."""

import sys

from .cli import main

if __name__ == "__main__":  # a spawned worker imports this module too
    sys.exit(main())
