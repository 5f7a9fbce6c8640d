"""``@nick`` mentions (quartchat/mentions.py): which members a text names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quartchat.mentions import MAX_CHECKS, MentionIndex, find_mentions
from quartchat.models import User

MEMBERS = [
    User("u-alice", "alice"),
    User("u-bob", "bob"),
    User("u-dr", "Dr"),
    User("u-who", "Dr. Who"),
    User("u-zoe", "zoë 🦊"),
    User("u-kim", "김민수"),
    User("u-x", "x_æ-12"),
]

CASES: list[tuple[str, tuple[str, ...]]] = [
    ("hi @alice", ("u-alice",)),
    ("@alice", ("u-alice",)),
    ("@ALICE, look", ("u-alice",)),
    ("@Alice.", ("u-alice",)),
    ("(@bob) and @alice", ("u-bob", "u-alice")),
    ("@bob @bob @bob", ("u-bob",)),
    ("@bob's idea", ("u-bob",)),
    ("ask @bob!", ("u-bob",)),
    ('"@bob"', ("u-bob",)),
    ("@\u0430lice", ("u-alice",)),  # Cyrillic a: a look-alike is the same nick
    ("@\uff41\uff4c\uff49\uff43\uff45", ("u-alice",)),  # fullwidth
    ("@alic\u0117", ("u-alice",)),  # a dot a reader misses
    ("@Dr. Who is here", ("u-who",)),  # the longest nick that fits
    ("@Dr is here", ("u-dr",)),
    ("@Dr.", ("u-dr",)),
    ("@zoë 🦊 hi", ("u-zoe",)),
    ("@zoë hi", ("u-zoe",)),  # the picture is not a word
    ("@김민수 님", ("u-kim",)),
    ("@x_æ-12 ok", ("u-x",)),
    ("@x-æ_12", ("u-x",)),  # punctuation does not tell nicks apart
    # not mentions
    ("alice", ()),
    ("@", ()),
    ("@ alice", ()),
    ("@alicex", ()),
    ("@al ice", ()),
    ("@carol", ()),
    ("bob@alice.com", ()),
    ("write to first.last@bob.org", ()),
    ("x.@bob", ()),
    ("see https://example.social/@alice", ()),
    ("see example.social/@alice", ()),
    ("www.example.com/@bob", ()),
    ("mailto:x@bob", ()),
    ("HTTPS://example.social/(@alice)", ()),
    ("@김민수님", ()),  # no word boundary after the nick
]


@pytest.mark.parametrize(("text", "named"), CASES, ids=[text for text, _ in CASES])
def test_mentions_of_members(text: str, named: tuple[str, ...]) -> None:
    assert find_mentions(text, MEMBERS) == named
    assert MentionIndex(MEMBERS).find(text) == named


def test_members_whose_nicks_look_alike_are_all_named() -> None:
    """Nicks are unique among users online only: two members may share a look."""
    twins = [User("u-1", "alice"), User("u-2", "Alice")]
    assert find_mentions("@alice hi", twins) == ("u-1", "u-2")


def test_no_members_no_at_sign_or_no_valid_text_names_no_one() -> None:
    assert find_mentions("@alice", []) == ()
    assert find_mentions("alice and bob", MEMBERS) == ()
    assert find_mentions("@alice \ud800", MEMBERS) == ()  # never stored: the parser refuses it


def test_the_work_per_text_is_bounded() -> None:
    """Past MAX_CHECKS candidates, later mentions are not looked for."""
    decoys = " ".join(f"@decoy{i}" for i in range(MAX_CHECKS))
    assert find_mentions(f"@bob {decoys}", MEMBERS) == ("u-bob",)
    assert find_mentions(f"{decoys} @bob", MEMBERS) == ()


texts = st.text(
    st.characters(codec=None) | st.sampled_from("@ .-_'/:aAlicebo\u0430\u200b"), max_size=300
)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(text=texts)
def test_any_text_gives_members_ids_and_never_raises(text: str) -> None:
    named = find_mentions(text, MEMBERS)
    assert set(named) <= {member.id for member in MEMBERS}
    assert len(set(named)) == len(named)
    if named:
        assert "@" in text


scalar_texts = st.text(
    st.characters(codec="utf-8") | st.sampled_from("@ .-_'/:aAlicebo\u0430\u200b"), max_size=300
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(before=scalar_texts, after=scalar_texts)
def test_a_mention_between_spaces_is_always_found(before: str, after: str) -> None:
    assert "u-bob" in find_mentions(f"{before} @bob {after}", MEMBERS) or (
        # unless the text before spends the budget, or opens a URL that runs on
        before.count("@") >= MAX_CHECKS // 2 or "/" in before or "www." in before.lower()
    )
