"""How the page looks: WCAG AA contrast in light and dark, colour emoji in
one's own bubbles, and the screenshots of light, dark and phone views."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import User, count_pixels

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
CONTRAST_JS = (Path(__file__).parent / "contrast.js").read_text()
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
}  # fmt: skip

#: Text that must meet 4.5:1 (3:1 when large), and controls whose edge must meet 3:1.
TEXT = [
    ".brand-name", "#status .status-text", ".identity-label", "#me", ".nick-button-text",
    "#online-heading", ".sidebar-hint", ".user-nick", ".you-tag", ".conv-name",
    ".msg-from", ".msg-time", ".msg-to", ".msg-text", ".msg-tag", ".msg-link", ".msg-code",
    ".msg-code-block", ".notice", ".day-label", ".typing", ".composer-hint", ".composer-count",
    ".send-text", "#input", ".badge", ".jump", ".history-marker", ".link-button",
]  # fmt: skip
UI = [
    "#input", "#send", ".conv-tab[aria-current='true']:not(.private-tab)",
    ".conv-item:has(.conv-tab[aria-current='true'])",
]  # fmt: skip


def contrast_failures(page: Page) -> list[str]:
    page.evaluate(CONTRAST_JS)
    checks = [[s, "text"] for s in TEXT] + [[s, "ui"] for s in UI] + [["#input", "placeholder"]]
    report = page.evaluate("checks => window.contrastReport(checks)", checks)
    assert len(report) > len(TEXT), "too few elements measured: is the scene set?"
    return [
        f"{r['what']}: {r['ratio']:.2f} < {r['needed']}" for r in report if r["ratio"] < r["needed"]
    ]


def nick_colour_failures(page: Page) -> list[str]:
    """Nick and avatar colours come from a hue per user: check every hue."""
    page.evaluate(CONTRAST_JS)
    failures = []
    for hue in range(0, 360, 10):
        page.locator("#messages .msg:not(.own)").first.evaluate(
            "(m, h) => m.style.setProperty('--h', String(h))", hue
        )
        page.locator("#messages .msg:not(.own) .avatar").first.evaluate(
            "(a, h) => a.style.setProperty('--h', String(h))", hue
        )
        report = page.evaluate(
            "() => window.contrastReport([['#messages .msg:not(.own) .msg-from', 'text'],"
            " ['#messages .msg:not(.own) .avatar', 'text']]).slice(0, 2)"
        )
        failures += [f"hue {hue} {r['what']}: {r['ratio']:.2f}" for r in report if r["ratio"] < 4.5]
    return failures


def set_scene(users, server) -> tuple[User, User]:
    """Yesterday's talk, today's messages (grouped, a link, code, a notice),
    a private conversation, an unread badge and a long draft."""
    now = int(time.time() * 1000)
    yesterday = now - 24 * 3600_000
    server.seed([
        ("morning! anyone around?", yesterday - 60_000),
        ("the build is green again", yesterday),
    ])  # fmt: skip
    alice = users.new("alice")
    bob = users.new("bob", **PHONE)
    bob.send("hi alice, the notes are at https://example.com/notes")
    bob.send("and the fix is `git pull --rebase` 🎉")
    alice.send("thanks! ❤️ looking now")
    alice.send("```\nmake test\n```")
    expect(bob.msg("thanks! ❤️ looking now")).to_have_count(1, timeout=TIMEOUT)
    # A private conversation, both ways, left unread on alice's side.
    alice.online(bob.id()).click()
    alice.send("just between us 👍")
    alice.page.locator('#conversations [data-conv="all"]').click()
    b = bob.page
    expect(b.locator(f'#conversations [data-conv="{alice.id()}"]')).to_be_visible(timeout=TIMEOUT)
    b.locator(f'#conversations [data-conv="{alice.id()}"]').click()
    bob.send("sure, see you at 3")
    b.locator('#conversations [data-conv="all"]').click()
    expect(alice.page.locator(".conv-tab .badge").last).to_be_visible(timeout=TIMEOUT)
    return alice, bob


def test_contrast_meets_wcag_aa_in_light_and_dark(users, server) -> None:
    alice, bob = set_scene(users, server)
    a = alice.page
    a.locator("#input").fill("a long draft " * 145)  # the counter shows near the limit
    a.evaluate("document.getElementById('jump').hidden = false")
    failures = []
    for scheme in ("light", "dark"):
        a.emulate_media(color_scheme=scheme)
        a.locator('#conversations [data-conv="all"]').click()
        a.locator("#input").fill("a long draft " * 145)
        a.evaluate("document.getElementById('jump').hidden = false")
        a.locator("#input").blur()  # a text field's resting border is what must show
        failures += [f"{scheme}, everyone: {f}" for f in contrast_failures(a)]
        failures += [f"{scheme}: {f}" for f in nick_colour_failures(a)]
        a.locator(f'#conversations [data-conv="{bob.id()}"]').click()
        failures += [f"{scheme}, private: {f}" for f in contrast_failures(a)]
    assert not failures, "\n".join(failures)


def test_emoji_are_in_colour_in_ones_own_bubbles(users) -> None:
    alice = users.new("alice")
    a = alice.page
    for scheme in ("light", "dark"):
        a.emulate_media(color_scheme=scheme)
        for emoji in ("❤️", "⚡", "✅", "⭐", "👍"):
            text = f"{scheme} {emoji}"
            mine = alice.send(text)
            expect(mine).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
            shot = mine.locator(".msg-text").screenshot(animations="disabled")
            assert count_pixels(a, shot, "coloured") > 20, (
                f"{emoji} is one colour in a {scheme} own bubble"
            )


def test_screenshots_of_light_dark_and_phone_views(users, server) -> None:
    alice, bob = set_scene(users, server)
    a, b = alice.page, bob.page
    alice.screenshot("desktop-light")
    a.emulate_media(color_scheme="dark")
    alice.screenshot("desktop-dark")
    a.locator(f'#conversations [data-conv="{bob.id()}"]').click()
    a.locator("#input").fill("a long draft " * 145)
    alice.screenshot("desktop-dark-private")
    bob.screenshot("phone-light")
    b.emulate_media(color_scheme="dark")
    bob.screenshot("phone-dark")
    shots = Path(__file__).parents[2] / "artifacts" / "screenshots"
    names = ("desktop-light", "desktop-dark", "desktop-dark-private", "phone-light", "phone-dark")
    for name in names:
        assert (shots / f"{name}.png").stat().st_size > 0
