"""The run's message payloads, and reading them back out of server frames.

1000 receivers at 40 msg/s read 40,000 message lines a second, and
``json.loads`` of each, line by line, was most of the generator's parsing
time. The checks need only the message id and the payload (sender, send
time), so ``FrameReader`` takes those straight from the text, with one
regular expression per frame, when each message line has exactly the shape
the server writes (compact JSON, keys in the order docs/protocol.md shows)::

    {"type":"message","id":42,"from":{"id":"..","nick":".."},"to":null,"text":"bench|<run>|3|7|12.5","ts":..}

and its text is one of this run's payloads written without escapes. For
any other frame it answers None and the caller goes line by line, decoding
with ``json`` what ``FrameReader.message`` does not take
(tests/test_bench_lines.py compares the two paths).
"""

from __future__ import annotations

import re

#: Lines are decoded only if they hold one of these JSON strings (as a key or
#: a value; inside a string its quotes would be escaped); presence and typing
#: lines are skipped.
INTERESTING_WORDS = ('"message"', '"ack"', '"error"', '"welcome"')
INTERESTING = re.compile("|".join(INTERESTING_WORDS))
#: How a message line starts, as the server writes it: what ``--check-after``
#: counts in the frames it keeps.
MESSAGE_LINE = '{"type":"message"'
#: A JSON string on one line: quotes and backslashes inside it are escaped.
#: (Runs of plain characters, then escapes each followed by a run: ten times
#: faster in ``re`` than one alternation per character.)
_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
#: A user as the server writes one.
_USER = r'\{"id":' + _STRING + r',"nick":' + _STRING + r"\}"


def make_payload(prefix: str, sender: int, seq: int, sent_at: float) -> str:
    return f"{prefix}{sender}|{seq}|{sent_at:.6f}"


def parse_payload(text: str, prefix: str) -> tuple[int, float]:
    """Sender index and send time of one of this run's payloads (ValueError if bad)."""
    sender, seq, sent_at = text[len(prefix) :].split("|")
    whole, _dot, fraction = sent_at.removeprefix("-").partition(".")
    if not (is_number(sender) and is_number(seq) and is_number(whole) and is_number(fraction)):
        raise ValueError(text)
    return int(sender), float(sent_at)


def is_number(text: str) -> bool:
    """ASCII digits only: ``int`` and ``float`` also take "+1", " 1", "1_0",
    "inf" and other scripts' digits."""
    return text.isascii() and text.isdigit()


class FrameReader:
    """Reads this run's message lines (prefix ``prefix``) without decoding JSON."""

    __slots__ = ("pattern",)

    def __init__(self, prefix: str) -> None:
        self.pattern = re.compile(
            r'^\{"type":"message","id":(\d+),"from":'
            + _USER
            + r',"to":(?:null|'
            + _USER
            + r'),"text":"'
            + re.escape(prefix)
            # sender|seq|send time as make_payload writes them; then the string ends.
            + r'(\d+)\|\d+\|(-?\d+\.\d+)"[,}]',
            re.MULTILINE | re.ASCII,
        )

    def message(self, line: str) -> tuple[int, int, float] | None:
        """(message id, sender index, send time) of one line if it is one of
        this run's messages in the usual shape; None otherwise."""
        found = self.pattern.match(line)
        if found is None:
            return None
        msg_id, sender, sent_at = found.groups()
        return int(msg_id), int(sender), float(sent_at)

    def messages(self, frame: str) -> list[tuple[int, int, float]] | None:
        """(id, sender, send time) of every message line in ``frame``, or None
        when some line needs the line-by-line path (another shape, another
        run's message, an ack, an error, a welcome)."""
        found = self.pattern.findall(frame)
        # Each line found holds "message" once (its type); anything more is
        # another line to handle, or an odd one: let the slow path see them.
        # (Counting each word is a fast scan; a line that INTERESTING matches
        # adds at least one.)
        message, ack, error, welcome = INTERESTING_WORDS
        count = frame.count
        if count(message) + count(ack) + count(error) + count(welcome) != len(found):
            return None
        return [(int(msg_id), int(sender), float(sent_at)) for msg_id, sender, sent_at in found]
