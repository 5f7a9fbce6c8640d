"""``@nick`` mentions: which members of a room a message's text names.

Pure and synchronous; the server resolves mentions when a message is
committed (issue 21) and the ``message`` frame carries their user ids.

The rules:

- A mention is ``@`` then a member's nick, compared as nicks are (through
  :func:`~quartchat.text.nick_keys`: case, look-alikes, marks a reader
  misses, punctuation and symbols make no difference), with as many words
  holding a letter or digit as the nick has (``@al ice`` is not ``alice``;
  ``@zoë`` is "zoë 🦊").
- The ``@`` starts a word: nothing before it, or a character that is not a
  letter, digit or mark nor one that joins the parts of an address
  (``_ . + - % & = / \\ ~ # : @``). So ``bob@example.com`` mentions no one.
  Nor does an ``@`` inside a URL (``https://example.social/@alice``,
  ``www...``, ``mailto:...``).
- The nick ends a word: the text goes on with no letter, digit or mark
  (``@alice,`` and ``@alice's`` name alice; ``@alicex`` does not).
- The longest nick that fits wins, so ``@Dr. Who`` names "Dr. Who" even
  when "Dr" is a member too.

Cost: a text without ``@`` costs one scan. Each candidate is compared by its
nick keys (ICU's skeleton, some tens of microseconds), so one text is
allowed at most :data:`MAX_CHECKS` candidates; mentions past that are not
found. Keys of names are cached (:data:`KEY_CACHE` names).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

from .frame_fields import is_scalar_text
from .models import User
from .text import nick_keys

#: Candidates (a spelling after an ``@``) compared per text, at most: bounds
#: what a message full of ``@`` costs (a few milliseconds).
MAX_CHECKS = 32
#: Cuts tried inside one word besides its end (see ``_spellings``).
CUTS_IN_A_WORD = 2
#: Names whose nick keys are kept between calls (members' nicks, and what
#: texts put after ``@``).
KEY_CACHE = 4096
#: Characters that join the parts of an e-mail address or a URL: an ``@``
#: after one of them is part of an address, not a mention.
_ADDRESS_JOINERS = frozenset("_.+-%&=/\\~#:@")
#: URLs, and the forms a reader takes for one; an ``@`` inside is not a
#: mention. A scheme is bounded (32 characters), or a text such as
#: "a.a.a..." makes the search quadratic.
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{0,31}://|www\.|mailto:)\S*")


def find_mentions(text: str, members: Iterable[User]) -> tuple[str, ...]:
    """Ids of the ``members`` that ``text`` mentions, in the order first named."""
    if "@" not in text:
        return ()
    return MentionIndex(members).find(text)


class MentionIndex:
    """A room's members by the keys of their nicks, to find mentions of them
    in many texts (build once per room and change of members or nicks)."""

    __slots__ = ("_by_key", "_longest", "_word_counts")

    def __init__(self, members: Iterable[User]) -> None:
        self._by_key: dict[tuple[int, str], list[str]] = {}
        #: Code points after an ``@`` a mention may span: twice the longest
        #: nick, for spellings that NFKC shortens (decomposed accents).
        self._longest = 0
        for user in members:
            self._longest = max(self._longest, 2 * len(user.nick))
            words = _words(user.nick)
            for key in _keys(user.nick):
                if key:
                    self._by_key.setdefault((words, key), []).append(user.id)
        #: How many words members' nicks have: spellings of other lengths
        #: are not compared at all.
        self._word_counts = frozenset(words for words, _ in self._by_key)

    def find(self, text: str) -> tuple[str, ...]:
        """Ids of the members ``text`` mentions, in the order first named."""
        if "@" not in text or not self._by_key or not is_scalar_text(text):
            return ()
        in_urls = [match.span() for match in _URL.finditer(text)]
        named: dict[str, None] = {}
        checks = 0
        at = text.find("@")
        while at != -1 and checks < MAX_CHECKS:
            after = at + 1
            if _starts_mention(text, at) and not any(a < at < b for a, b in in_urls):
                for spelling in _spellings(text, after, self._longest):
                    words = _words(spelling)
                    if words not in self._word_counts:
                        continue
                    checks += 1
                    ids = self._members_named(spelling, words)
                    if ids:
                        named.update(dict.fromkeys(ids))
                        after += len(spelling)
                        break
                    if checks >= MAX_CHECKS:
                        break
            at = text.find("@", after)
        return tuple(named)

    def _members_named(self, spelling: str, words: int) -> list[str]:
        for key in _keys(spelling):
            ids = self._by_key.get((words, key))
            if ids:
                return ids
        return []


def _is_letter(ch: str) -> bool:
    """A letter, mark or digit: what a nick is compared by."""
    return unicodedata.category(ch)[0] in "LMN"


def _starts_mention(text: str, at: int) -> bool:
    """True when the ``@`` at ``at`` starts a word (not part of an address)."""
    if at == 0:
        return True
    before = text[at - 1]
    return not _is_letter(before) and before not in _ADDRESS_JOINERS


def _words(name: str) -> int:
    """How many words of ``name`` hold a letter or digit."""
    return sum(1 for word in name.split() if any(_is_letter(ch) for ch in word))


def _spellings(text: str, start: int, longest: int) -> Iterator[str]:
    """What may follow the ``@`` at ``start - 1`` as a nick, longest first:
    up to ``longest`` code points, cut where a letter is followed by a
    character that is not one (so the nick ends a word), without trailing
    punctuation. In each word, only the first :data:`CUTS_IN_A_WORD` cuts
    and the word's end are tried ("Dr.Who's" gives "Dr", "Dr.Who" and
    "Dr.Who's"; "a.b.c.d.e" no more than four)."""
    span = text[start : start + longest]
    if not span or span[0].isspace():
        return
    ends: list[int] = []
    cuts_in_word = 0
    for i, ch in enumerate(span):
        if ch.isspace():
            cuts_in_word = 0
            continue
        following = start + i + 1
        if _is_letter(ch) and (following == len(text) or not _is_letter(text[following])):
            if cuts_in_word == CUTS_IN_A_WORD + 1:
                ends[-1] = i + 1  # past the first cuts: keep only the word's end
            else:
                ends.append(i + 1)
                cuts_in_word += 1
    for end in reversed(ends):
        yield span[:end]


@lru_cache(maxsize=KEY_CACHE)
def _keys(name: str) -> frozenset[str]:
    return nick_keys(unicodedata.normalize("NFKC", name).strip())
