"""axe-core, the accessibility checker, run in the page at desktop and phone
sizes: no serious or critical violation, and none of the rules that once
failed here (a button's name not holding its visible text, an empty h1).

axe-core comes from the npm registry: scripts/test.sh installs it into
.test-tools/ (gitignored), and the test reads ``axe.min.js`` from there.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT, Users

pytestmark = pytest.mark.browser

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
AXE = ROOT / ".test-tools" / "node_modules" / "axe-core" / "axe.min.js"
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
}  # fmt: skip
#: Rules that must pass whatever their impact; label-content-name-mismatch is
#: one of axe's experimental rules, off unless asked for.
REQUIRED = ("label-content-name-mismatch", "empty-heading")

RUN_AXE_JS = """async (rules) => {
    const options = { rules: Object.fromEntries(rules.map((id) => [id, { enabled: true }])) };
    const result = await axe.run(document, options);
    const ran = new Set([...result.passes, ...result.violations, ...result.incomplete,
                         ...result.inapplicable].map((r) => r.id));
    return {
        ran: rules.filter((id) => ran.has(id)),
        violations: result.violations.map((v) => ({
            id: v.id, impact: v.impact,
            nodes: v.nodes.map((n) => n.target.join(' ')),
        })),
    };
}"""


def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed at {AXE}: run bash scripts/test.sh once")
    return AXE.read_text()


def violations(page: Page, where: str) -> list[str]:
    """What axe finds that matters: any violation of a REQUIRED rule, and any
    serious or critical one, each as "where: rule (impact) on targets"."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())  # through the debugger: the page's CSP does not apply
    result: dict[str, Any] = page.evaluate(RUN_AXE_JS, list(REQUIRED))
    assert result["ran"] == list(REQUIRED), f"axe did not run {REQUIRED}: {result['ran']}"
    return [
        f"{where}: {v['id']} ({v['impact']}) on {', '.join(v['nodes'])}"
        for v in result["violations"]
        if v["id"] in REQUIRED or v["impact"] in ("serious", "critical")
    ]


def test_axe_finds_nothing_serious_on_desktop_and_phone(users: Users) -> None:
    alice = users.new("alice")
    bob = users.new("bob", **PHONE)
    carol = users.new("carol")
    for other in (bob, carol):
        expect(alice.online(other.id())).to_have_count(1, timeout=TIMEOUT)
    alice.send("hello all 👋")
    alice.online(carol.id()).click()
    alice.send("just us 🤫")
    expect(bob.online(alice.id())).to_have_count(1, timeout=TIMEOUT)
    a, b = alice.page, bob.page

    found = []
    for scheme in ("light", "dark"):
        a.emulate_media(color_scheme=scheme)
        # No slide-in: axe counts only what is on screen, so the drawer must be in place.
        b.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        found += violations(a, f"desktop {scheme}, private tab")
        # With a row of the online list focused, its hint shows beside the nick.
        alice.online(bob.id()).locator("button").focus()
        found += violations(a, f"desktop {scheme}, online row focused")
        found += violations(b, f"phone {scheme}")
        b.locator("#sidebar-toggle").tap()
        expect(b.locator("#sidebar-close")).to_be_focused(timeout=TIMEOUT)
        expect(bob.online(alice.id())).to_be_in_viewport(ratio=1, timeout=TIMEOUT)
        found += violations(b, f"phone {scheme}, online drawer open")
        b.locator("#sidebar-close").tap()
        expect(b.locator("#sidebar-toggle")).to_be_focused(timeout=TIMEOUT)
    assert not found, "axe-core found:\n" + "\n".join(found)
