"""A link's text is what it opens (issue 19, point 7): no bidi control reorders
it, its host is shown as the browser will open it (punycode when it mixes
scripts), and a URL with a userinfo part is not a link.

What a reader sees is the link's characters in the order they are drawn, left
to right, not its text in memory: ``drawn`` reads that order from the page.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, expect

from .conftest import User

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000

#: The characters of an element's text sorted by where they are drawn, left to
#: right (the links here fit on one line); characters that draw nothing
#: (bidi controls) are left out.
DRAWN = """(element) => {
  const range = document.createRange();
  const drawn = [];
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let offset = 0;
    for (const ch of node.data) {
      range.setStart(node, offset);
      range.setEnd(node, offset + ch.length);
      offset += ch.length;
      const box = range.getBoundingClientRect();
      if (box.width > 0) drawn.push([box.left, ch]);
    }
  }
  return drawn.sort((a, b) => a[0] - b[0]).map((pair) => pair[1]).join("");
}"""

#: A Cyrillic host under a Cyrillic top-level domain ("example" in Russian).
CYRILLIC_HOST = "\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444"
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def drawn(element: Locator) -> str:
    text: str = element.evaluate(DRAWN)
    return text


def links_in(user: User, text: str) -> Locator:
    message = user.msg(text)
    expect(message).to_have_count(1, timeout=TIMEOUT)
    return message.locator(".msg-text a")


def test_a_bidi_override_cannot_make_a_link_read_as_another_host(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    before = "see \u202ehttps://evil.example/?moc.elgoog.www//:sptth"
    inside = "https://evil.example/\u202e/moc.elgoog.www//:sptth"
    alice.send(before)
    alice.send(inside)
    link = links_in(bob, before)
    expect(link).to_have_count(1)
    # Before the fix it was drawn as "https://www.google.com?/elpmaxe.live//:sptth".
    assert drawn(link) == "https://evil.example/?moc.elgoog.www//:sptth"
    expect(link).to_have_text("https://evil.example/?moc.elgoog.www//:sptth")
    expect(link).to_have_attribute("href", "https://evil.example/?moc.elgoog.www//:sptth")
    # A control inside a URL ends the link: what follows is plain text.
    link = links_in(bob, inside)
    expect(link).to_have_count(1)
    assert drawn(link) == "https://evil.example/"
    expect(link).to_have_attribute("href", "https://evil.example/")
    for a in bob.page.locator("#messages .msg-text a").all():
        assert not BIDI_CONTROLS & set(a.text_content() or "")
        expect(a).to_have_attribute("dir", "ltr")


def test_a_url_with_a_userinfo_part_is_not_a_link(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    # U+2215 DIVISION SLASH: "google.com\u2215" is a user name, the host is evil.example.
    lying = "https://google.com\u2215@evil.example/"
    plain = "www.google.com@evil.example and https://example.com/@alice"
    alice.send(lying)
    alice.send(plain)
    expect(links_in(bob, lying)).to_have_count(0)
    expect(bob.msg(lying).locator(".msg-text")).to_have_text(lying)
    # An "@" in the path is no userinfo: that link stays.
    links = links_in(bob, plain)
    expect(links).to_have_count(1)
    expect(links).to_have_text("https://example.com/@alice")
    expect(links).to_have_attribute("href", "https://example.com/@alice")


def test_a_host_that_mixes_scripts_shows_in_punycode(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    text = "https://g\u043e\u043egle.com/ (Cyrillic o)"
    alice.send(text)
    link = links_in(bob, "https://xn--ggle-55da.com/ (Cyrillic o)")
    expect(link).to_have_count(1)
    assert drawn(link) == "https://xn--ggle-55da.com/"
    expect(link).to_have_attribute("href", "https://xn--ggle-55da.com/")


def test_ordinary_and_single_script_links_keep_their_text(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    text = (
        "see https://example.com:8080/path?q=1#top and www.example.org/a "
        f"and https://b\u00fccher.example/st\u00fcck and https://{CYRILLIC_HOST}/ "
        "and http://Example.COM/X and https://\u4e2d\u6587.example/"
    )
    alice.send(text)
    links = links_in(bob, text)
    shown = [
        "https://example.com:8080/path?q=1#top",
        "www.example.org/a",
        "https://b\u00fccher.example/st\u00fcck",
        f"https://{CYRILLIC_HOST}/",
        "http://Example.COM/X",
        "https://\u4e2d\u6587.example/",
    ]
    expect(links).to_have_text(shown)
    assert [drawn(link) for link in links.all()] == shown
    assert [link.get_attribute("href") for link in links.all()] == [
        "https://example.com:8080/path?q=1#top",
        "https://www.example.org/a",
        "https://xn--bcher-kva.example/st%C3%BCck",
        "https://xn--e1afmkfd.xn--p1ai/",
        "http://example.com/X",
        "https://xn--fiq228c.example/",
    ]
    expect(bob.msg(text).locator(".msg-text")).to_have_text(text)


def test_a_link_in_right_to_left_text_reads_left_to_right(users) -> None:
    alice = users.new("alice")
    bob = users.new("bob")
    text = "\u0627\u0646\u0638\u0631 https://example.com/a/b \u0647\u0646\u0627"
    alice.send(text)
    link = links_in(bob, text)
    expect(link).to_have_count(1)
    expect(bob.msg(text).locator(".msg-text")).to_have_css("direction", "rtl")
    assert drawn(link) == "https://example.com/a/b"
