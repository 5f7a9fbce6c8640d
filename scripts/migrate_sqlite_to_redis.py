"""Kept for old notes and habits: the same as ``quartchat migrate`` (see
:mod:`quartchat.migrate`), which an installed quartchat has without a
checkout. ``--url`` is another name for ``--to``."""

from __future__ import annotations

import sys

from quartchat.migrate import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
