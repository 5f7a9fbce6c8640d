"""Nick spoofing: a nick that reads like an online user's is taken, and a nick
that shows nothing is no nick (NFKC, Unicode TS #39 skeletons, invisibles)."""

from __future__ import annotations

import unicodedata

import pytest

from conftest import Clients, RunningServer
from quartchat.errors import FrameError
from quartchat.models import User
from quartchat.presence import Presence
from quartchat.protocol import clean_nick

#: Each reads as "alice" to a person; built from code points so the source
#: itself stays free of look-alikes.
LOOK_ALIKES = {
    "cyrillic-a": "\u0430lice",
    "capital-i-for-l": "aIice",
    "upper-case": "ALICE",
    "fullwidth": "\uff41\uff4c\uff49\uff43\uff45",
    "math-bold": "".join(chr(0x1D41A + ord(c) - ord("a")) for c in "alice"),
    "hangul-filler": "alice\u3164",
    "braille-blank": "alice\u2800",
    "grapheme-joiner": "alice\u034f",
    "variation-selector": "alice\ufe0f",
    "spaced-filler": "alice \u2800",
}

#: Issue 19's look-alikes the skeleton alone let through, each with the nick it
#: reads as: marks a reader cannot tell from the letter, small capitals and
#: Cherokee capitals.
SEEN_ALIKE = {
    "dot-above-e": ("alic\u0117", "alice"),
    "dot-above-c": ("ali\u010be", "alice"),
    "acute-on-i": ("adm\u00edn", "admin"),
    "low-line": ("al\u0332ice", "alice"),
    "short-stroke-overlay": ("al\u0335ice", "alice"),
    "enclosing-circle": ("al\u20ddice", "alice"),
    "arabic-superscript-alef": ("al\u0670ice", "alice"),
    "low-line-admin": ("adm\u0332in", "admin"),
    "short-stroke-overlay-admin": ("adm\u0335in", "admin"),
    "enclosing-circle-admin": ("adm\u20ddin", "admin"),
    "arabic-superscript-alef-admin": ("adm\u0670in", "admin"),
    "small-capitals-m-i": ("ad\u1d0d\u026an", "admin"),
    "small-capitals-all": ("\u1d00\u029f\u026a\u1d04\u1d07", "alice"),
    "cherokee-capitals": ("\u13aa\u13de\u13c6\u13df\u13ac", "alice"),
}

#: Pairs a reader tells apart: a nick stays free while the other is online.
TOLD_APART = {
    "acute-on-e": ("jos\u00e9", "jose"),
    "acute-in-cyrillic": ("\u0418\u0432\u0430\u0301\u043d", "\u0418\u0432\u0430\u043d"),
    "devanagari-anusvara": ("\u0938\u0902\u0924", "\u0938\u0924"),
    "kana-voicing-mark": ("\u304b\u304e", "\u304b\u304d"),
    "arabic-damma": ("\u0645\u064f\u062d\u0645\u062f", "\u0645\u062d\u0645\u062f"),
    "greek-delta": ("\u0394\u0391\u039d\u0391", "dana"),
    "cherokee-word": ("\u13e3\u13b3\u13a9", "alice"),
    "small-capitals-other-name": ("\u0299\u1d0f\u0299", "alice"),
    "l-with-stroke": ("o\u0142a", "ola"),
}

#: Nicks that show nothing at all.
INVISIBLE = {
    "hangul-filler": "\u3164",
    "halfwidth-hangul-filler": "\uffa0\uffa0",
    "braille-blank": "\u2800\u2800\u2800",
    "grapheme-joiner": "\u034f",
    "variation-selector": "\ufe0f",
    "mixed": "\u3164 \u2800\u034f",
    "ideographic-space": "\u3000",
}


def online(*nicks: str) -> Presence:
    presence = Presence()
    for n, nick in enumerate(nicks):
        presence.add(n, User(f"u{n}", clean_nick(nick)))
    return presence


@pytest.mark.parametrize("nick", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_look_alike_of_an_online_nick_is_not_free(nick: str) -> None:
    assert not online("alice").is_free(clean_nick(nick), "u-new")


@pytest.mark.parametrize(("nick", "original"), SEEN_ALIKE.values(), ids=SEEN_ALIKE.keys())
def test_a_nick_that_differs_only_by_what_a_reader_misses_is_not_free(
    nick: str, original: str
) -> None:
    assert not online(original).is_free(clean_nick(nick), "u-new")
    assert not online(nick).is_free(clean_nick(original), "u-new")


@pytest.mark.parametrize(("nick", "other"), TOLD_APART.values(), ids=TOLD_APART.keys())
def test_nicks_a_reader_tells_apart_stay_free(nick: str, other: str) -> None:
    assert online(other).is_free(clean_nick(nick), "u-new")
    assert online(nick).is_free(clean_nick(other), "u-new")


def test_nfd_and_nfc_spellings_are_one_nick() -> None:
    nfc = unicodedata.normalize("NFC", "caf\u00e9")
    nfd = unicodedata.normalize("NFD", nfc)
    assert clean_nick(nfd) == nfc
    assert not online(nfc).is_free(clean_nick(nfd), "u-new")


def test_fullwidth_and_mathematical_letters_are_stored_plain() -> None:
    assert clean_nick(LOOK_ALIKES["fullwidth"]) == "alice"
    assert clean_nick(LOOK_ALIKES["math-bold"]) == "alice"


@pytest.mark.parametrize("nick", ["bob", "alicia", "alice2", "al", "caf\u00e9"])
def test_different_names_stay_free(nick: str) -> None:
    assert online("alice", "cafe").is_free(clean_nick(nick), "u-new")


def test_the_holder_may_respell_their_own_nick() -> None:
    presence = online("alice")
    assert presence.is_free(clean_nick("ALICE"), "u0")
    presence.rename("u0", "ALICE")
    assert not presence.is_free("alice", "u-new")
    presence.rename("u0", "bob")
    assert presence.is_free("alice", "u-new")


def test_a_nick_is_free_once_its_holder_leaves() -> None:
    presence = online("alice")
    presence.remove(0, "u0")
    assert presence.is_free(LOOK_ALIKES["cyrillic-a"], "u-new")


@pytest.mark.parametrize("nick", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_nick_that_shows_nothing_is_a_bad_nick(nick: str) -> None:
    with pytest.raises(FrameError) as info:
        clean_nick(nick)
    assert info.value.code == "bad_nick"


@pytest.mark.parametrize("nick", ["\u00e9\u00e9", "42", "\u4e2d\u6587", "bob \U0001f642"])
def test_nicks_in_any_script_with_a_letter_or_digit_are_fine(nick: str) -> None:
    assert clean_nick(nick) == nick


@pytest.mark.parametrize("nick", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
async def test_posing_as_an_online_user_is_refused_over_the_socket(
    server: RunningServer, clients: Clients, nick: str
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await bob.send(type="nick", nick=nick)
    assert (await bob.expect("error"))["code"] == "nick_taken"
    await bob.say("b1", "still bob")
    assert (await alice.expect("message"))["from"]["nick"] == "bob"


@pytest.mark.parametrize(("nick", "original"), SEEN_ALIKE.values(), ids=SEEN_ALIKE.keys())
async def test_posing_with_marks_small_capitals_or_cherokee_is_refused_over_the_socket(
    server: RunningServer, clients: Clients, nick: str, original: str
) -> None:
    holder, _ = await clients.join(server, nick=original)
    bob, _ = await clients.join(server, nick="bob")
    await bob.send(type="nick", nick=nick)
    assert (await bob.expect("error"))["code"] == "nick_taken"
    await bob.say("b1", "still bob")
    assert (await holder.expect("message"))["from"]["nick"] == "bob"


async def test_a_newcomer_asking_for_a_look_alike_gets_another_name(
    server: RunningServer, clients: Clients
) -> None:
    await clients.join(server, nick="alice")
    spoofer, _ = await clients.join(server, nick=LOOK_ALIKES["cyrillic-a"])
    assert spoofer.user["nick"] == LOOK_ALIKES["cyrillic-a"] + "-2"


@pytest.mark.parametrize("nick", INVISIBLE.values(), ids=INVISIBLE.keys())
async def test_an_invisible_nick_is_refused_over_the_socket(
    server: RunningServer, clients: Clients, nick: str
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    await alice.send(type="nick", nick=nick)
    assert (await alice.expect("error"))["code"] == "bad_nick"
