"""What the rooms' browser tests share: making, finding and opening rooms the
way a person does (the sidebar, which is a drawer on a phone, and the dialogs),
and asking the server directly from a user's page for what it would show them."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from .conftest import User, exact

#: Milliseconds an expectation may take to come true.
TIMEOUT = 10_000
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
}  # fmt: skip


def is_phone(page: Page) -> bool:
    return bool(page.evaluate("matchMedia('(max-width: 760px)').matches"))


def sidebar(user: User, page: Page | None = None) -> Page:
    """Make the sidebar reachable: on a phone, open the drawer."""
    page = page or user.page
    if is_phone(page) and page.locator("#sidebar-toggle").get_attribute("aria-expanded") != "true":
        page.locator("#sidebar-toggle").click()
        expect(page.locator("#sidebar-close")).to_be_focused(timeout=TIMEOUT)
    return page


def close_sidebar(user: User, page: Page | None = None) -> None:
    """On a phone, close the drawer if it is open (Escape, as a keyboard user does)."""
    page = page or user.page
    if page.locator("#sidebar-toggle").get_attribute("aria-expanded") == "true":
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar-toggle")).to_have_attribute("aria-expanded", "false")


def room_entry(user: User, name: str, page: Page | None = None) -> Locator:
    """The room's button in the user's room list."""
    page = page or user.page
    return page.locator("#rooms .room-button").filter(
        has=page.locator(".room-name").filter(has_text=exact(name))
    )


def room_id(user: User, name: str, page: Page | None = None) -> str:
    rooms = (page or user.page).evaluate("window.quartchat.state.rooms")
    found = [r["id"] for r in rooms if r["name"] == name]
    assert found, f"{user.nick} is not in {name}: {rooms}"
    return str(found[0])


def create_room(user: User, name: str, kind: str = "public", topic: str = "") -> str:
    """Create a room with the New room dialog; returns its id once it is shown."""
    page = sidebar(user)
    page.locator("#room-new").click()
    expect(page.locator("#room-dialog")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#room-name")).to_be_focused()
    page.locator("#room-name").fill(name)
    page.locator(f'#room-form input[name="kind"][value="{kind}"]').check()
    if topic:
        page.locator("#room-topic-input").fill(topic)
    page.locator("#room-submit").click()
    expect(page.locator("#room-dialog")).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator("#room-title")).to_contain_text(name, timeout=TIMEOUT)
    return room_id(user, name)


def open_room(user: User, name: str, page: Page | None = None) -> None:
    page = sidebar(user, page)
    room_entry(user, name, page).click()
    expect(page.locator("#room-title")).to_contain_text(name, timeout=TIMEOUT)


def open_general(user: User, page: Page | None = None) -> None:
    """The Everyone tab, above the messages (with the drawer closed on a phone)."""
    close_sidebar(user, page)
    (page or user.page).locator('#conversations [data-conv="all"]').click()


def join_from_directory(user: User, name: str) -> str:
    """Browse rooms, press Join beside ``name``; returns the room's id."""
    page = sidebar(user)
    page.locator("#room-browse").click()
    dialog = page.locator("#directory-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    dialog.get_by_role("button", name=f"Join {name}", exact=True).click()
    expect(dialog).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator("#room-title")).to_contain_text(name, timeout=TIMEOUT)
    return room_id(user, name)


def invite(user: User, nick: str) -> None:
    """From the shown room's Members dialog, invite ``nick``."""
    page = user.page
    page.locator("#room-members").click()
    dialog = page.locator("#members-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#members-status")).to_contain_text("member", timeout=TIMEOUT)
    page.locator("#invite-user").select_option(label=nick)
    page.locator("#invite-submit").click()
    expect(page.locator("#invite-note")).to_have_text(f"{nick} is now a member.", timeout=TIMEOUT)
    expect(page.locator("#members-list li").filter(has_text=nick)).to_have_count(1, timeout=TIMEOUT)
    page.locator("#members-close").click()
    expect(dialog).to_be_hidden()
    # Focus goes back to the button that opened the dialog (once it closed).
    expect(page.locator("#room-members")).to_be_focused()


#: Opens a socket of its own as the page's user (its stored token), sends
#: ``frames`` after the welcome and collects every frame for ``ms``.
ASK_SERVER_JS = """async ([frames, ms]) => {
    const token = JSON.parse(localStorage.getItem("quartchat.token"));
    const ws = new WebSocket(`ws://${location.host}/ws`);
    const got = [];
    await new Promise((resolve, reject) => {
        ws.onerror = reject;
        ws.onopen = () => ws.send(JSON.stringify({type: "hello", token, nick: null}));
        ws.onmessage = (event) => {
            for (const line of event.data.split("\\n")) {
                if (!line.trim()) continue;
                const frame = JSON.parse(line);
                got.push(frame);
                if (frame.type === "welcome") {
                    for (const f of frames) ws.send(JSON.stringify(f));
                    setTimeout(resolve, ms);
                }
            }
        };
    });
    ws.close();
    return got;
}"""


def ask_server(page: Page, frames: list[dict[str, Any]], ms: int = 1500) -> list[dict[str, Any]]:
    """Every frame the server sends a fresh connection of this page's user
    that sends ``frames`` after its welcome."""
    got: list[dict[str, Any]] = page.evaluate(ASK_SERVER_JS, [frames, ms])
    return got
