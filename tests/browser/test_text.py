"""What a message's text becomes on the page: safe links, code, and the
direction of right-to-left scripts; never markup."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000


def test_links_are_safe_and_the_text_around_them_stays_text(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    text = "docs at https://example.com/a_(b)?q=1&r=2, mirror www.example.org. ok?"
    alice.send(text)
    for user in (alice, bob):
        message = user.msg(text)
        expect(message).to_have_count(1, timeout=TIMEOUT)
        links = message.locator(".msg-text a")
        expect(links).to_have_count(2)
        expect(links).to_have_text(["https://example.com/a_(b)?q=1&r=2", "www.example.org"])
        assert [links.nth(i).get_attribute("href") for i in range(2)] == [
            "https://example.com/a_(b)?q=1&r=2",
            "https://www.example.org/",
        ]
        for i in range(2):
            expect(links.nth(i)).to_have_attribute("target", "_blank")
            expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
        # The punctuation after each link, and the words between, are text.
        expect(message.locator(".msg-text")).to_have_text(text)


def test_javascript_urls_and_html_stay_text(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    payloads = [
        "javascript:alert(1)",
        "JavaScript://example.com/%0Aalert(2)",
        "<a href='javascript:alert(3)'>click</a>",
        "<img src=x onerror=alert(4)> and https://ok.example/<b>bold</b>",
        "data:text/html,<script>alert(5)</script>",
    ]
    for payload in payloads:
        last = alice.send(payload)
    # Acked in order: once the last is, all are stored before bob's "done".
    expect(last).to_have_attribute("data-state", "sent", timeout=TIMEOUT)
    bob.send("done")
    expect(alice.msg("done")).to_have_count(1, timeout=TIMEOUT)
    for user in (alice, bob):
        page = user.page
        expect(user.msg(payloads[-1])).to_have_count(1, timeout=TIMEOUT)
        assert page.locator("#messages .msg-text").all_text_contents() == [*payloads, "done"]
        expect(page.locator("#messages img, #messages script, #messages b")).to_have_count(0)
        # The one link is the https one, cut where the markup starts.
        links = page.locator("#messages .msg-text a")
        expect(links).to_have_count(1)
        expect(links).to_have_attribute("href", "https://ok.example/")
    alice.page.wait_for_timeout(300)
    assert alice.dialogs == [] and bob.dialogs == []


def test_inline_code_and_fenced_blocks_are_shown_as_code(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    inline = "run `rm -rf build/` then `https://not.a.link/` please"
    fenced = "look:\n```python\ndef f():\n    return '<b>'\n```\nthanks"
    alice.send(inline)
    alice.send(fenced)
    # The backticks mark code; they are not shown.
    shown = bob.page.locator("#messages .msg")
    code = shown.filter(has_text="rm -rf build/").locator("code")
    expect(code).to_have_text(["rm -rf build/", "https://not.a.link/"], timeout=TIMEOUT)
    expect(shown.filter(has_text="rm -rf build/").locator("a")).to_have_count(0)
    expect(shown.filter(has_text="rm -rf build/").locator(".msg-text")).to_have_text(
        "run rm -rf build/ then https://not.a.link/ please"
    )
    fenced_shown = shown.filter(has_text="thanks")
    block = fenced_shown.locator("pre code")
    expect(block).to_have_count(1, timeout=TIMEOUT)
    assert block.text_content() == "def f():\n    return '<b>'"
    expect(fenced_shown.locator("b")).to_have_count(0)
    assert fenced_shown.locator(".msg-text").text_content() == (
        "look:def f():\n    return '<b>'thanks"
    )


def test_right_to_left_text_and_nicks_get_their_direction(users) -> None:
    alice = users.new("سارة")
    bob = users.new("bob")
    arabic = "مرحبا بالجميع!"
    alice.send(arabic)
    bob.send("hello, سارة")
    b = bob.page
    message = bob.msg(arabic)
    expect(message).to_have_count(1, timeout=TIMEOUT)
    for part in (".msg-text", ".msg-from"):
        expect(message.locator(part)).to_have_attribute("dir", "auto")
        expect(message.locator(part)).to_have_css("direction", "rtl")
    # A left-to-right message stays left-to-right.
    expect(bob.msg("hello, سارة").locator(".msg-text")).to_have_css("direction", "ltr")
    expect(b.locator("#online .user-nick").filter(has_text="سارة")).to_have_attribute("dir", "auto")
    expect(b.locator("#input")).to_have_attribute("dir", "auto")
    b.locator("#input").fill("שלום")
    expect(b.locator("#input")).to_have_css("direction", "rtl")
