"""What quartchat's commands share on the command line: a mistake in how a
command was called is one line naming it, and exit status 2, so a person
reads the cause at once and a supervisor flags the start as failed."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

#: Exit status when an option, a setting, the database or the address cannot be used.
BAD_START = 2


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, status 2 (argparse's
    own print the whole usage first); ``--help`` still shows it."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_START, f"{self.prog}: {message} (see {self.prog} --help)\n")


def bad_start(cause: str, prog: str = "quartchat") -> int:
    """Say ``cause`` in one line on stderr; the exit status for it."""
    print(f"{prog}: {cause}", file=sys.stderr)
    return BAD_START
