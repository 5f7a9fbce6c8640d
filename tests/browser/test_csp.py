"""The page works under the server's Content-Security-Policy: nothing it
loads or runs is refused, and the chat (socket included) still works."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import Users

pytestmark = pytest.mark.browser

#: Records every policy violation in the page, from before its own scripts run.
RECORD_VIOLATIONS = """
window.__refused = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__refused.push(`${e.effectiveDirective} refused ${e.blockedURI || 'inline'}`);
});
"""


def test_nothing_on_the_page_is_refused_by_its_policy(users: Users) -> None:
    alice = users.new("alice", join=False)
    bob = users.new("bob", join=False)
    for user in (alice, bob):
        user.context.add_init_script(RECORD_VIOLATIONS)
        user.join()

    alice.send("under the policy")
    expect(bob.msg("under the policy")).to_be_visible()
    bob.page.locator("#nick-button").click()  # a dialog, its styles and its form
    expect(bob.page.locator("#nick-dialog")).to_be_visible()

    for user in (alice, bob):
        assert user.page.evaluate("window.__refused") == [], user.nick
