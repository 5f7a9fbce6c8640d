"""Emoji sequences drawn as one picture in message bubbles, and avatar hues
that tell apart users whose ids are alike."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, expect

from .conftest import Users, count_pixels

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000

#: Sequences one font glyph stands for: people joined by ZWJ, a flag built
#: from a variation selector and ZWJ, a family of four, and a subdivision flag
#: spelt with tag characters (U+E0067... U+E007F).
SEQUENCES = {
    "woman technologist": "\U0001f469\u200d\U0001f4bb",
    "rainbow flag": "\U0001f3f3\ufe0f\u200d\U0001f308",
    "family of four": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "flag of Scotland": "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
}
SINGLE = "\U0001f44d"  # thumbs up: the width of one emoji picture

#: The width of the emoji between the spaces of a bubble's text, in pixels.
MEASURE_JS = """(bubble) => {
    const text = bubble.querySelector('.msg-text');
    const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const start = node.data.indexOf(' ');
        const end = node.data.lastIndexOf(' ');
        if (start < 0 || end <= start) continue;
        const range = document.createRange();
        range.setStart(node, start + 1);
        range.setEnd(node, end);
        return range.getBoundingClientRect().width;
    }
    return null;
}"""


def emoji_width(bubble: Locator) -> float:
    width = bubble.evaluate(MEASURE_JS)
    assert width, "the emoji between the spaces was not found in the bubble"
    return float(width)


def test_emoji_sequences_are_one_picture_in_bubbles(users: Users) -> None:
    """A sequence the font draws as one glyph is one emoji wide in a bubble,
    own or someone else's, in light and dark; split into its parts it would
    be two to four wide (or lose its tags and show a plain black flag, which
    the width alone would not catch, hence the check of the tag flag's
    colour below)."""
    alice = users.new("alice")
    bob = users.new("bob")
    widths: dict[str, dict[str, float]] = {}
    for name, sequence in {"single": SINGLE, **SEQUENCES}.items():
        text = f"look {sequence} here"
        mine = alice.send(text)
        expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
        theirs = bob.msg(text)
        expect(theirs).to_have_count(1, timeout=TIMEOUT)
        widths[name] = {
            "own": emoji_width(mine),
            "other": emoji_width(theirs),
        }
    one = widths.pop("single")
    split = []
    for name, measured in widths.items():
        for whose, width in measured.items():
            ratio = width / one[whose]
            if not 0.8 < ratio < 1.3:
                split.append(f"{name} in {whose} bubble: {ratio:.2f} emoji wide")
    assert not split, "sequences drawn in parts:\n" + "\n".join(split)

    # The flag of Scotland joined is white on blue; broken it is a black flag.
    flag = alice.msg(f"look {SEQUENCES['flag of Scotland']} here").locator(".msg-text")
    for scheme in ("light", "dark"):
        alice.page.emulate_media(color_scheme=scheme)
        blue = count_pixels(alice.page, flag.screenshot(animations="disabled"), "sky blue")
        assert blue > 20, f"the flag of Scotland lost its tags in a {scheme} own bubble"


#: Makes users on the page's server one after another, as the page's first
#: visit does (a `hello` with no token), and returns their ids in order.
MAKE_USERS_JS = """async (count) => {
    const ids = [];
    for (let i = 0; i < count; i += 1) {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        const id = await new Promise((resolve, reject) => {
            ws.onopen = () => ws.send(JSON.stringify(
                {type: 'hello', token: null, nick: `made${i}`, last_id: null, epoch: null}));
            ws.onmessage = (event) => {
                const frame = JSON.parse(event.data);
                if (frame.type === 'welcome') resolve(frame.user.id);
            };
            ws.onerror = () => reject(new Error('the socket failed'));
        });
        ws.close();
        ids.push(id);
    }
    return ids;
}"""

#: The page's own hue() for each id, and how spread those hues are: the mean
#: circular distance between the hues of ids next to each other in the list,
#: and how many of twelve 30-degree sectors of the hue circle they fall in.
SPREAD_JS = """async (ids) => {
    const { hue } = await import('/static/js/util.js');
    const hues = ids.map(hue);
    let sum = 0;
    for (let i = 1; i < hues.length; i += 1) {
        const d = Math.abs(hues[i] - hues[i - 1]) % 360;
        sum += Math.min(d, 360 - d);
    }
    const sectors = new Set(hues.map((h) => Math.floor(h / 30))).size;
    return { hues, meanStep: sum / (hues.length - 1), sectors };
}"""


def server_shaped(prefix: str, counter_start: int, count: int, step: int = 1) -> list[str]:
    """Ids as the server writes them ("u" and 16 hex digits) that differ only
    where a counter would: ``prefix`` then a hex counter padded to 16 digits."""
    width = 16 - len(prefix)
    return [f"u{prefix}{counter_start + i * step:0{width}x}" for i in range(count)]


def test_avatar_hues_of_alike_ids_are_spread_over_the_circle(users: Users) -> None:
    """Twelve users made one after another, and twelve ids alike but for a
    counter, get hues far apart: hues drawn at random would be 90 degrees
    apart on average from one to the next and fill about 7.7 of 12 sectors;
    a hash whose last character moves the hue by a degree or two puts a
    run of alike ids in one or two sectors, some 2 degrees apart."""
    alice = users.new("alice")
    page = alice.page
    families = {
        "users made one after another": page.evaluate(MAKE_USERS_JS, 12),
        "a counter in the last digits": server_shaped("9f3c", 0x1200, 12),
        "a counter of even steps": server_shaped("00", 0x40, 12, step=2),
        "the first digit counting": [f"u{d:x}3b7e91c04a5d2f6" for d in range(12)],
    }
    problems = []
    for name, ids in families.items():
        assert len(set(ids)) == 12, f"{name}: ids not distinct: {ids}"
        spread = page.evaluate(SPREAD_JS, ids)
        if spread["meanStep"] <= 45 or spread["sectors"] < 6:
            problems.append(
                f"{name}: hues {spread['hues']}, {spread['meanStep']:.1f} degrees apart"
                f" on average, in {spread['sectors']} of 12 sectors"
            )
    assert not problems, "alike ids, alike colours:\n" + "\n".join(problems)
