// Conversation views (general as "all", rooms, private ones): panes, tabs,
// unread badges and the history marker on top.

import { storage } from "./storage.js";
import { el } from "./util.js";
import { nickOf, state } from "./state.js";
import { dom, followPane } from "./dom.js";
import { updateTitle } from "./status.js";

// ---------------------------------------------------------------- keys

/** The conversation key of a room: general's view is "all" (as before rooms). */
export function roomKey(roomId) {
  return !roomId || roomId === "general" ? "all" : `room:${roomId}`;
}

/** The room id of a conversation key, or null for a private conversation. */
export function roomIdOf(key) {
  if (key === "all") return "general";
  return typeof key === "string" && key.startsWith("room:") ? key.slice(5) : null;
}

// What the "Load older messages" button on top of each pane does. History
// paging sits above this module (it renders into these panes), so app.js
// plugs it in at start-up rather than this module importing it.
let loadOlder = () => {};

export function setLoadOlder(fn) {
  loadOlder = fn;
}

export function persistDms() {
  const list = [];
  for (const [key, conv] of state.convs) {
    if (key !== "all" && conv.listed) list.push({ id: key, nick: conv.nick });
  }
  storage.set("dms", list);
}

export function makeConv(key, nick) {
  const pane = el("div", "pane");
  pane.dataset.conv = key;
  // First child of every pane: the paging marker ("Beginning of conversation",
  // "Loading…") and a button doing what scrolling to the top does.
  const top = el("div", "history-top");
  const marker = el("div", "history-marker");
  marker.setAttribute("role", "note");
  const markerButton = el("button", "link-button load-older", "Load older messages");
  markerButton.type = "button";
  markerButton.addEventListener("click", () => loadOlder(key));
  top.append(marker, markerButton);
  pane.append(top);
  followPane(pane);
  const conv = {
    key,
    nick: nick || null,
    listed: key === "all",
    pane,
    top,
    marker,
    markerButton,
    floor: null, // this conversation's own floor from `with` / `room` history
    loading: false,
    unread: 0,
    mentions: 0, // unread messages naming this reader
    readId: 0, // the read marker the server holds for this conversation
    newest: 0, // the highest message id shown here
    room: null, // a room's {id, name, kind, topic, role}; null otherwise
    entry: null, // a room's button in the sidebar's room list
    scroll: { atBottom: true, fromBottom: 0 },
    tab: null,
    badge: null,
  };
  state.convs.set(key, conv);
  if (key === "all") {
    conv.tab = dom.conversations.querySelector('[data-conv="all"]');
    conv.badge = conv.tab.querySelector(".badge");
  }
  updateMarker(conv);
  return conv;
}

export function getConv(key, nick) {
  let conv = state.convs.get(key);
  if (!conv) conv = makeConv(key, nick);
  if (nick && key !== "all" && conv.nick !== nick) {
    conv.nick = nick;
    if (conv.tab) renderTab(conv);
    if (conv.listed) persistDms();
  }
  return conv;
}

/** Make sure a private conversation has a tab (and is remembered). */
export function listConv(key, nick) {
  const conv = getConv(key, nick);
  if (!conv.nick) conv.nick = nickOf(key, "someone");
  if (!conv.listed) {
    conv.listed = true;
    buildTab(conv);
    persistDms();
  }
  return conv;
}

function buildTab(conv) {
  const wrap = el("span", "conv-item");
  wrap.dataset.for = conv.key;
  const tab = el("button", "conv-tab private-tab");
  tab.type = "button";
  tab.dataset.conv = conv.key;
  const dot = el("span", "presence-dot");
  dot.setAttribute("aria-hidden", "true");
  const name = el("span", "conv-name");
  name.dir = "auto";
  const badge = el("span", "badge");
  badge.hidden = true;
  tab.append(dot, name, badge);
  const close = el("button", "conv-close", "×");
  close.type = "button";
  wrap.append(tab, close);
  dom.conversations.append(wrap);
  conv.tab = tab;
  conv.badge = badge;
  conv.close = close;
  renderTab(conv);
}

export function renderTab(conv) {
  if (!conv.tab || conv.key === "all") return;
  conv.tab.querySelector(".conv-name").textContent = conv.nick || "someone";
  const online = state.online.has(conv.key);
  conv.tab.classList.toggle("is-online", online);
  conv.tab.title = `Private conversation with ${conv.nick}${online ? " (online)" : " (offline)"}`;
  conv.close.setAttribute("aria-label", `Close the conversation with ${conv.nick}`);
}

function badgeText(n) {
  return n > 99 ? "99+" : String(n);
}

export function renderBadge(conv) {
  if (conv.badge) {
    conv.badge.hidden = conv.unread === 0;
    conv.badge.textContent = badgeText(conv.unread);
    conv.badge.setAttribute("aria-label", `${conv.unread} unread`);
  }
  if (conv.entry) {
    // The room list's entry: its name is its content, so the counts are
    // spoken from visually hidden words beside the figures.
    const { badge, mention, button } = conv.entry;
    badge.hidden = conv.unread === 0;
    badge.firstChild.textContent = badgeText(conv.unread);
    mention.hidden = conv.mentions === 0;
    mention.lastChild.textContent = conv.mentions === 1 ? " 1 mention" : ` ${conv.mentions} mentions`;
    button.classList.toggle("has-unread", conv.unread > 0);
    button.classList.toggle("has-mention", conv.mentions > 0);
  }
  if (conv.tab) conv.tab.classList.toggle("has-mention", conv.mentions > 0);
  let anyUnread = false;
  for (const c of state.convs.values()) if (c.unread > 0 && c.key !== state.active) anyUnread = true;
  dom.sidebarToggle.classList.toggle("has-unread", anyUnread);
  updateTitle();
}

// ---------------------------------------------------------------- history markers

export function convFloor(conv) {
  // Lowest id from which this conversation is known to be complete.
  const all = state.floorAll;
  if (conv.key === "all") return all;
  if (conv.room) return conv.floor; // general's pages say nothing of a room's
  if (all === null) return conv.floor;
  if (conv.floor === null) return all;
  return Math.min(all, conv.floor);
}

export function atBeginning(conv) {
  const floor = convFloor(conv);
  return floor !== null && floor <= 1; // ids start at 1: nothing can be below
}

export function updateMarker(conv) {
  const begin = atBeginning(conv);
  conv.marker.classList.toggle("beginning", begin);
  conv.top.classList.toggle("beginning", begin);
  conv.top.dataset.state = begin ? "beginning" : conv.loading ? "loading" : "more";
  conv.marker.hidden = !begin;
  conv.marker.textContent = !begin ? ""
    : conv.key === "all" ? "Beginning of conversation"
    : conv.room ? `Beginning of ${conv.room.name}`
    : `Beginning of conversation with ${conv.nick || "them"}`;
  const button = conv.markerButton;
  const hide = begin || !state.welcomed;
  if (hide && !button.hidden && document.activeElement === button) {
    dom.messages.focus({ preventScroll: true }); // do not drop keyboard focus on <body>
  }
  button.hidden = hide;
  button.textContent = conv.loading ? "Loading older messages…" : "Load older messages";
  if (conv.loading) button.setAttribute("aria-disabled", "true");
  else button.removeAttribute("aria-disabled");
}

export function updateAllMarkers() {
  for (const conv of state.convs.values()) updateMarker(conv);
}
