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
