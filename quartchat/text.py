"""What user text looks like on screen: invisible characters, and nicknames
that look alike.

Two rules go beyond encoding. Text made only of characters that draw nothing
is no text at all; and two nicknames that look the same are the same
nickname, or anyone could pose as anyone. Both come from Unicode's own data
through ICU, not from a hand-made table (one letter TS #39 misses aside):

- invisible: Unicode White_Space, or Default_Ignorable_Code_Point (zero-width
  spaces and joiners, bidi marks, variation selectors, Hangul fillers...);
- look-alike: the confusable skeleton of Unicode TS #39 (ICU's
  SpoofChecker), which gives Cyrillic U+0430 and Latin "a", "I" and "l", "rn"
  and "m", fullwidth and mathematical letters one form.

Before the skeleton, a nick is reduced to what a reader glancing at the
online list can tell apart (``_as_seen``); the skeleton alone leaves marks
and small capitals as they are. The decision, mark by mark:

- Told apart, kept: an accent that Unicode gives its base letter's script
  (its Script_Extensions name that script) or that makes a precomposed letter
  with it, on a letter with nothing above it: "cafe" and "caf\u00e9", where
  the acute is a stroke over a bare letter, a spelling readers of the
  language know. Marks of other scripts on their own letters (Devanagari
  vowel signs and virama, Arabic harakat on Arabic letters, kana voicing
  marks) are kept too: they make different names.
- Not told apart, dropped: a mark that belongs to no script of its base and
  makes no letter with it (combining low line, stroke overlay, enclosing
  circle, an Arabic superscript alef over a Latin letter): decoration a
  reader takes for underline, strike-through or rendering noise. A mark made
  of dots (dot above or below, diaeresis above or below): one or two dots are
  the smallest marks there are, lost at chat size ("alic\u0117", "ali\u010be").
  Any mark above a Soft_Dotted letter (i, j...): it takes the place of the
  dot, so the letter keeps its outline ("adm\u00edn").
- Small capitals ("LATIN LETTER SMALL CAPITAL M", and the Greek and Cyrillic
  ones) are their script's capital drawn small; nicks ignore case, so a small
  capital is its letter, found by its Unicode name.
- Cherokee capitals were shaped after Latin ones; TS #39 maps most of them
  (U+13AA to "A", U+13DE to "L"...), and since a nick ignores case, one that
  looks like the holder's nick in capitals clashes too (the third key in
  ``nick_keys``). One letter the TS #39 data leaves out, CHEROKEE LETTER QUA
  U+13C6, is mapped to "I" here: issue 19 found U+13AA U+13DE U+13C6 U+13DF
  U+13AC read as "ALICE".

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

import re
import unicodedata

import icu

_IGNORABLE = icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT
_SOFT_DOTTED = icu.UProperty.SOFT_DOTTED
#: Marks drawn as one or two dots, by their Unicode names.
_DOT_MARKS = frozenset(
    unicodedata.lookup(f"COMBINING {name}")
    for name in ("DOT ABOVE", "DOT BELOW", "DIAERESIS", "DIAERESIS BELOW")
)
#: Canonical combining class of marks drawn above their base.
_ABOVE = 230
#: "LATIN LETTER SMALL CAPITAL M", "LATIN CAPITAL LETTER SMALL CAPITAL I"...
_SMALL_CAPITAL = re.compile(r"(\w+) (?:CAPITAL )?LETTER SMALL CAPITAL (.+)")
#: Look-alikes the TS #39 data leaves out (see the module docstring).
_MISSING_CONFUSABLES = {"\u13c6": "I"}
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

    A key is the TS #39 skeleton of the nick as a reader sees it (marks no
    one can tell from the letter dropped, small capitals folded: see the
    module docstring), reduced to letters, marks and digits: invisible
    characters, spaces, punctuation and symbols (a Braille blank included)
    change nothing. One key folds case first ("ALICE", or "alice" with a
    Cyrillic a), one after the skeleton, which keeps capital "I" looking like
    "l" ("aIice"), and one compares the nick written in capitals, so letters
    that look like Latin capitals (Cherokee) clash with the nick they spell.
    Call with an NFKC-normalised nick (see ``clean_nick``).
    """
    return frozenset({_key(nick.casefold()), _key(nick).casefold(), _key(nick.upper())})


def has_letter(nick: str) -> bool:
    """True when the nick shows at least one letter or digit (as it looks)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in _letters(_skeleton(nick)))


def _key(text: str) -> str:
    """The skeleton of ``text`` as seen, as letters, marks and digits. Small
    capitals are folded again after the skeleton, which gives some letters
    one as their look-alike (Cyrillic U+0432 becomes U+0299, a small B)."""
    return "".join(_small_capital_letter(ch) or ch for ch in _letters(_skeleton(_as_seen(text))))


def _skeleton(text: str) -> str:
    return str(_SPOOF.getSkeleton(0, text))


def _as_seen(text: str) -> str:
    """``text`` decomposed (NFD) with the marks a reader cannot tell from
    their letter dropped and small capitals and missing look-alikes folded."""
    seen: list[str] = []
    base = ""
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.category(ch) in ("Mn", "Me"):
            if _mark_shows(base, ch):
                seen.append(ch)
            continue
        base = ch
        seen.append(_MISSING_CONFUSABLES.get(ch) or _small_capital_letter(ch) or ch)
    return "".join(seen)


def _mark_shows(base: str, mark: str) -> bool:
    """True when a reader can tell ``base`` with ``mark`` from ``base`` alone."""
    if not base or mark in _DOT_MARKS:
        return False
    if unicodedata.combining(mark) == _ABOVE and icu.Char.hasBinaryProperty(base, _SOFT_DOTTED):
        return False
    makes_letter = len(unicodedata.normalize("NFC", base + mark)) == 1
    base_script = icu.Script.getScript(base).getScriptCode()
    return makes_letter or bool(icu.Script.hasScript(mark, base_script))


def _small_capital_letter(ch: str) -> str | None:
    """The lower-case letter a small capital is drawn as, or None."""
    found = _SMALL_CAPITAL.fullmatch(unicodedata.name(ch, ""))
    if found is None:
        return None
    script, letter = found.groups()
    try:
        return unicodedata.lookup(f"{script} CAPITAL LETTER {letter}").lower()
    except KeyError:
        return None


def _letters(text: str) -> str:
    return "".join(
        ch
        for ch in text
        if unicodedata.category(ch)[0] in "LMN" and not icu.Char.hasBinaryProperty(ch, _IGNORABLE)
    )
