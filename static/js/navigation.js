// Moving between conversations: switching the shown pane (general, a room or
// a private conversation), closing private tabs, the sidebar and its phone drawer.

import { isMe, state } from "./state.js";
import { dom, isNearBottom, scrollToBottom, scrollToFromBottom } from "./dom.js";
import { updateTitle } from "./status.js";
import { renderTyping, stopTyping } from "./typing.js";
import { listConv, persistDms, renderBadge, roomIdOf } from "./conversations.js";
import { renderRoomList } from "./rooms.js";
import { markRead } from "./reads.js";
import { ensureFilled } from "./history.js";
import { refreshComposer } from "./counter.js";
import { loadDraft } from "./drafts.js";
import { renderOnline } from "./presence.js";
import { renderMuteNote } from "./mutes.js";

/** The bar above a room's messages: its name, topic and actions. */
function renderRoomBar(conv) {
  const room = conv.key !== "all" ? conv.room : null;
  dom.roomBar.hidden = !room;
  if (!room) return;
  dom.roomTitle.textContent = room.kind === "private" ? `${room.name} (private)` : `# ${room.name}`;
  dom.roomTopic.textContent = room.topic;
  dom.roomTopic.hidden = !room.topic;
  dom.roomMembers.setAttribute("aria-label", `Members of ${room.name}`);
  dom.roomLeave.setAttribute("aria-label", `Leave ${room.name}`);
}

let onRoomShown = () => {};

/** What showing a room starts (fetching its members, for mentions): plugged in by app.js. */
export function setOnRoomShown(fn) {
  onRoomShown = fn;
}

export function switchConv(key, { focus = false } = {}) {
  const isRoom = roomIdOf(key) !== null;
  const next = isRoom ? (state.convs.get(key) || state.convs.get("all")) : listConv(key);
  const prev = state.convs.get(state.active);
  if (prev && prev !== next) {
    const m = dom.messages;
    prev.scroll = { atBottom: isNearBottom(), fromBottom: m.scrollHeight - m.scrollTop };
    stopTyping();
  }
  state.active = next.key;
  dom.input.value = loadDraft(next.key);
  refreshComposer();
  dom.messages.replaceChildren(next.pane);
  if (next.scroll.atBottom) scrollToBottom();
  else scrollToFromBottom(next.scroll.fromBottom);
  dom.jump.hidden = true;
  next.unread = 0;
  next.mentions = 0;
  renderBadge(next);
  renderRoomList();
  renderRoomBar(next);
  for (const tab of dom.conversations.querySelectorAll(".conv-tab")) {
    if (tab.dataset.conv === next.key) tab.setAttribute("aria-current", "true");
    else tab.removeAttribute("aria-current");
  }
  if (next.key === "all") {
    dom.input.placeholder = "Message everyone";
    dom.messages.setAttribute("aria-label", "Messages to everyone");
  } else if (next.room) {
    dom.input.placeholder = `Message ${next.room.name}`;
    dom.messages.setAttribute("aria-label", `Messages in ${next.room.name}`);
  } else {
    dom.input.placeholder = `Private message to ${next.nick}`;
    dom.messages.setAttribute("aria-label", `Private messages with ${next.nick}`);
  }
  document.body.classList.toggle("in-private", !next.room && next.key !== "all");
  renderTyping();
  renderOnline();
  renderMuteNote();
  updateTitle();
  ensureFilled(next.key);
  markRead(next);
  if (next.room) onRoomShown(next.room.id);
  if (focus) dom.input.focus();
}

/** The shown room's name or topic changed (a welcome, a member frame). */
export function refreshRoomBar() {
  const conv = state.convs.get(state.active);
  if (conv) renderRoomBar(conv);
}

function unlistConv(key) {
  const conv = state.convs.get(key);
  if (!conv || key === "all") return;
  conv.listed = false;
  conv.unread = 0;
  const wrap = dom.conversations.querySelector(`.conv-item[data-for="${CSS.escape(key)}"]`);
  if (wrap) wrap.remove();
  conv.tab = null;
  conv.badge = null;
  persistDms();
  if (state.active === key) switchConv("all");
}

// ---------------------------------------------------------------- sidebar (phones)

const narrow = window.matchMedia("(max-width: 760px)");

export function setSidebar(open) {
  document.body.classList.toggle("sidebar-open", open);
  dom.sidebarToggle.setAttribute("aria-expanded", String(open));
  dom.backdrop.hidden = !open;
  if (narrow.matches) {
    dom.sidebar.inert = !open;
    if (open) dom.sidebarClose.focus();
  } else {
    dom.sidebar.inert = false;
  }
}

// ---------------------------------------------------------------- wiring

/** Conversation tabs, the online list (click = private chat) and the drawer. */
export function wireNavigation() {
  dom.conversations.addEventListener("click", (event) => {
    const close = event.target.closest(".conv-close");
    if (close) {
      const key = close.parentElement.dataset.for;
      unlistConv(key);
      dom.conversations.querySelector('[data-conv="all"]').focus();
      return;
    }
    const tab = event.target.closest("[data-conv]");
    if (tab) switchConv(tab.dataset.conv, { focus: true });
  });

  dom.rooms.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-conv]");
    if (!button) return;
    if (narrow.matches) setSidebar(false);
    switchConv(button.dataset.conv, { focus: true });
  });

  dom.online.addEventListener("click", (event) => {
    const li = event.target.closest("li[data-user-id]");
    if (!li || isMe(li.dataset.userId)) return;
    const id = li.dataset.userId;
    listConv(id, state.online.get(id));
    if (narrow.matches) setSidebar(false);
    switchConv(id, { focus: true });
  });

  dom.sidebarToggle.addEventListener("click", () => setSidebar(!document.body.classList.contains("sidebar-open")));
  dom.sidebarClose.addEventListener("click", () => { setSidebar(false); dom.sidebarToggle.focus(); });
  dom.backdrop.addEventListener("click", () => setSidebar(false));
  document.addEventListener("keydown", (event) => {
    // Escape in a dialog opened from the drawer closes the dialog only.
    if (event.key === "Escape" && document.body.classList.contains("sidebar-open") && !document.querySelector("dialog[open]")) {
      setSidebar(false);
      dom.sidebarToggle.focus();
    }
  });
  const onNarrowChange = () => setSidebar(false);
  if (narrow.addEventListener) narrow.addEventListener("change", onNarrowChange);
}
