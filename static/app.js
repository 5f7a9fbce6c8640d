// quartchat browser client: entry point. Plain ES modules under /static/js/,
// no dependencies, no build step. This file wires the modules together,
// attaches the page-wide listeners and boots the page.
//
// Everything the user writes or receives is put into the page with
// textContent / createTextNode, never as HTML.
//
// Modules, lowest first (each imports only from modules earlier in this list):
//   constants, storage, util   tunables, localStorage, pure helpers
//   state, dom, status, socket shared state, element refs (and staying at the
//                              bottom), status/toasts, frame writes
//   counter, drafts            the composer's height and length counter; drafts
//   typing, conversations      typing indicators; panes, tabs and history markers
//   days, richtext             day dividers and grouping; links and code in text
//   linkhost                   the host a link opens, as the page shows it (punycode when it mixes scripts)
//   messages, outbox, history  rendering messages; sending; paging older ones
//   nick, presence             nickname dialog; who is online
//   navigation                 switching conversations, sidebar
//   notify                     browser notifications for private messages in a hidden tab
//   frames, connection         server frames; the socket's lifecycle
//   composer                   the message input
// Two calls go upward and are plugged in here instead of imported:
// the panes' "Load older messages" button (history) and the first-visit
// nickname dialog starting the connection.

import { NEAR_TOP_PX, OFFSET_RE } from "./js/constants.js";
import { storage } from "./js/storage.js";
import { isMe, state } from "./js/state.js";
import { dom, isNearBottom, scrollToBottom, stickToBottom } from "./js/dom.js";
import { setStatus, updateTitle } from "./js/status.js";
import { listConv, makeConv, setLoadOlder } from "./js/conversations.js";
import { discardEntry, queueMessage, retryEntry, showOutboxEntry } from "./js/outbox.js";
import { requestOlder } from "./js/history.js";
import { openNickDialog, wireNickDialog } from "./js/nick.js";
import { renderOnline } from "./js/presence.js";
import { setSidebar, switchConv, wireNavigation } from "./js/navigation.js";
import { wireNotify } from "./js/notify.js";
import { killSocket, reconnectNow, startConnecting } from "./js/connection.js";
import { wireComposer } from "./js/composer.js";
import { relabelDividers } from "./js/days.js";

// ---------------------------------------------------------------- wiring

/** Open (and list) the private conversation with a message's author, who
 *  may be offline: the server takes a private `send` to any known user. */
function openPrivateWith(userId, nick) {
  if (!userId || isMe(userId)) return;
  listConv(userId, state.online.get(userId) || nick);
  switchConv(userId, { focus: true });
}

/** Listeners that belong to no single module: the message list and the page. */
function wire() {
  stickToBottom(); // before the list's other scroll listener, which asks it
  wireComposer();

  dom.messages.addEventListener("scroll", () => {
    if (dom.messages.scrollTop < NEAR_TOP_PX) requestOlder(state.active);
    if (isNearBottom()) dom.jump.hidden = true;
  }, { passive: true });
  dom.messages.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "private") {
      openPrivateWith(button.dataset.user, button.textContent);
      return;
    }
    const node = button.closest(".msg");
    if (!node || !node.dataset.offset) return;
    if (button.dataset.action === "retry") retryEntry(node.dataset.offset);
    else if (button.dataset.action === "discard") discardEntry(node.dataset.offset);
  });
  dom.jump.addEventListener("click", () => {
    scrollToBottom();
    dom.input.focus();
  });

  wireNavigation();
  wireNotify();
  wireNickDialog(startConnecting);

  window.addEventListener("online", () => {
    setStatus(state.welcomed ? "connected" : "reconnecting");
    reconnectNow();
  });
  window.addEventListener("offline", () => {
    setStatus("offline");
    if (state.ws) killSocket(4000, "offline");
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      state.unreadHidden = 0;
      updateTitle();
      if (!state.ws && state.started && navigator.onLine) reconnectNow();
    }
  });
}

function boot() {
  // The upward call the panes need, plugged in before the first pane exists.
  setLoadOlder(requestOlder);
  makeConv("all");
  for (const dm of storage.get("dms", []) || []) {
    if (dm && typeof dm.id === "string") listConv(dm.id, dm.nick || "someone");
  }
  const saved = storage.get("outbox", []);
  state.outbox = Array.isArray(saved)
    ? saved.filter((e) => e && typeof e.offset === "string" && OFFSET_RE.test(e.offset) && typeof e.text === "string")
        .map((e) => ({ ...e, state: e.state === "failed" ? "failed" : "pending" }))
    : [];
  dom.messages.replaceChildren(state.convs.get("all").pane);
  for (const entry of state.outbox) showOutboxEntry(entry);

  wire();
  // "Today" turns into "Yesterday" at midnight, even on a page left open.
  let today = new Date().toDateString();
  setInterval(() => {
    if (new Date().toDateString() === today) return;
    today = new Date().toDateString();
    relabelDividers([...state.convs.values()].map((conv) => conv.pane));
  }, 60_000);
  setSidebar(false);
  setStatus(navigator.onLine ? "reconnecting" : "offline");
  dom.me.textContent = state.user ? state.user.nick : (state.wantedNick || "…");
  renderOnline();
  switchConv("all");

  if (!state.token && !state.user && !state.wantedNick) {
    openNickDialog("first");
  } else {
    startConnecting();
  }
}

boot();

// A small window for tests and debugging.
window.quartchat = {
  get state() {
    return {
      status: state.status,
      user: state.user,
      cursor: state.cursor,
      epoch: state.epoch,
      conversation: state.active,
      online: [...state.online].map(([id, nick]) => ({ id, nick })),
      outbox: state.outbox.map((e) => ({ ...e })),
      messageIds: [...state.messages.keys()].sort((a, b) => a - b),
    };
  },
  send(text, to = null) {
    const conv = to ? listConv(to, state.online.get(to)) : null;
    return queueMessage(text, to, conv ? conv.nick : null).offset;
  },
  open(id) {
    switchConv(id || "all");
  },
  reconnect() {
    if (state.ws) killSocket(4000, "manual");
    else reconnectNow();
  },
};
