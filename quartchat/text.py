"""What user text looks like on screen: invisible characters, and nicknames
that look alike.

Two rules go beyond encoding. Text made only of characters that draw nothing
is no text at all; and two nicknames that look the same are the same
nickname, or anyone could pose as anyone. Both come from Unicode's own data
through ICU, not from a hand-made table:

- invisible: Unicode White_Space, or Default_Ignorable_Code_Point (zero-width
  spaces and joiners, bidi marks, variation selectors, Hangul fillers...);
- look-alike: the confusable skeleton of Unicode TS #39 (ICU's
  SpoofChecker), which gives Cyrillic U+0430 and Latin "a", "I" and "l", "rn"
  and "m", fullwidth and mathematical letters one form.

Why PyICU: it binds ICU, the reference implementation of both TS #39 and the
Unicode properties, and is maintained. On PyPI, confusable-homoglyphs lists
homoglyphs per character but has no skeleton (no one form to compare by),
and confusables (last release 2021, Unicode 13 data) expands a string into
many candidates instead. PyICU itself is a source distribution that
compiles against the system's ICU (headers, pkg-config and a C++ compiler);
the `pyicu-wheels` distribution builds the same `icu` module with ICU inside
the wheel, for Linux (x86-64, arm64) and macOS, so quartchat installs with
no compiler and gets the same ICU data on every machine.
"""

from __future__ import annotations

import unicodedata

import icu

_IGNORABLE = icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT
#: Read-only after construction; used from the event loop thread only.
_SPOOF = icu.SpoofChecker()


def is_invisible(ch: str) -> bool:
    """True for a character that draws nothing: whitespace or default-ignorable."""
    return ch.isspace() or bool(icu.Char.hasBinaryProperty(ch, _IGNORABLE))


def is_blank(text: str) -> bool:
    """True when ``text`` has nothing to see (empty, or only invisible characters)."""
    return all(is_invisible(ch) for ch in text)


def nick_keys(nick: str) -> frozenset[str]:
    """The forms a nickname is compared in; two nicks clash when a key is shared.

    A key is the TS #39 skeleton reduced to letters, marks and digits:
    invisible characters, spaces, punctuation and symbols (a Braille blank
    included) change nothing. One key folds case first ("ALICE", or "alice"
    with a Cyrillic a), the other after the skeleton, which keeps capital
    "I" looking like "l" ("aIice"). Call with an NFKC-normalised nick (see
    ``clean_nick``).
    """
    return frozenset({_letters(_skeleton(nick.casefold())), _letters(_skeleton(nick)).casefold()})


def has_letter(nick: str) -> bool:
    """True when the nick shows at least one letter or digit (as it looks)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in _letters(_skeleton(nick)))


def _skeleton(text: str) -> str:
    return str(_SPOOF.getSkeleton(0, text))


def _letters(text: str) -> str:
    return "".join(
        ch
        for ch in text
        if unicodedata.category(ch)[0] in "LMN" and not icu.Char.hasBinaryProperty(ch, _IGNORABLE)
    )
