// quartchat browser client: one ES module, no dependencies.
//
// Everything the user writes or receives is put into the page with
// textContent / createTextNode, never as HTML.

// ---------------------------------------------------------------- constants

const STORE_PREFIX = "quartchat.";
const ACK_TIMEOUT_MS = 10_000;
const MAX_RETRIES = 3; // after the first send
const PING_EVERY_MS = 10_000;
// Any frame proves the socket alive; a pong answers each ping within one
// interval, so this much silence means a dead connection the browser missed.
const DEAD_AFTER_MS = 25_000;
const WELCOME_TIMEOUT_MS = 15_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const TYPING_THROTTLE_MS = 2_000;
const TYPING_IDLE_MS = 3_000;
const TYPING_STALE_MS = 6_000;
const HISTORY_LIMIT = 50;
const HISTORY_TIMEOUT_MS = 15_000;
const MAX_TEXT = 2000;
const MAX_NICK = 32;
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 120;
const MAX_INFLIGHT = 1; // unacked sends at once: 1 keeps our own order under rate limits
const PACE_MS = 150; // spacing between sends for a while after rate_limited
const PACE_FOR_MS = 30_000;
const OFFSET_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const NICK_BAD_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

// ---------------------------------------------------------------- storage

const storage = {
  get(key, fallback = null) {
    try {
      const raw = localStorage.getItem(STORE_PREFIX + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(STORE_PREFIX + key);
      else localStorage.setItem(STORE_PREFIX + key, JSON.stringify(value));
    } catch {
      /* private mode or quota: the page still works, it just forgets */
    }
  },
};

// ---------------------------------------------------------------- state

const state = {
  token: storage.get("token"),
  user: storage.get("user"), // {id, nick}
  cursor: storage.get("last_id"), // highest message id seen
  epoch: storage.get("epoch"),
  knownEpoch: storage.get("epoch"), // kept even when the cursor is dropped
  wantedNick: storage.get("wanted_nick"), // asked for, not yet confirmed
  wantedFromDialog: false,

  status: "reconnecting",
  ws: null,
  welcomed: false,
  everWelcomed: false,
  attempt: 0,
  reconnectTimer: 0,
  pingTimer: 0,
  watchdogTimer: 0,
  lastFrameAt: 0,
  socketOpenedAt: 0,

  online: new Map(), // id -> nick
  messages: new Map(), // id -> message (dedupe + conversation membership)
  floorAll: null, // every visible message with id >= floorAll is loaded; 0 = from the start
  awaitFirstAfterWelcome: false,
  gap: null, // {below, above, pages}: ids missing after a non-recovered resume
  gapBelow: null,
  helloNick: null,
  welcomedAt: 0,

  convs: new Map(), // key -> conversation view
  active: "all",

  outbox: [], // [{offset, text, to, toNick, ts, state, reason}]
  outboxMeta: new Map(), // offset -> {el, inflight, sends, timer}
  pausedUntil: 0,
  pauseTimer: 0,
  rateStreak: 0, // consecutive rate-limited rounds, reset by an ack
  lastRateAt: 0,
  paceUntil: 0,
  lastSendAt: 0,

  history: { queue: [], inflight: null, timer: 0, failures: 0 },

  typingOut: { active: false, to: null, lastSent: 0, idleTimer: 0 },
  typingIn: new Map(), // convKey -> Map(userId -> {nick, timer})

  nickRequest: null, // {nick, timer} while a nick change waits for an answer
  unreadHidden: 0,
};

const sessionPrefix = randomId(8);
let offsetCounter = 0;

// ---------------------------------------------------------------- helpers

function randomId(length) {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

function newOffset() {
  offsetCounter += 1;
  return `${sessionPrefix}-${Date.now().toString(36)}-${offsetCounter}`;
}

function codePoints(text) {
  return [...text].length;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

function hhmm(ts) {
  const d = new Date(ts);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

function fullDate(ts) {
  return new Date(ts).toLocaleString(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit",
  });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function hue(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

function initial(nick) {
  const first = [...String(nick || "?").trim()][0] || "?";
  return first.toUpperCase();
}

function avatar(id, nick) {
  const a = el("span", "avatar", initial(nick));
  a.setAttribute("aria-hidden", "true");
  a.style.setProperty("--h", String(hue(id)));
  return a;
}

function isMe(id) {
  return !!state.user && id === state.user.id;
}

function nickOf(id, fallback) {
  if (state.online.has(id)) return state.online.get(id);
  const conv = state.convs.get(id);
  if (conv && conv.nick) return conv.nick;
  return fallback || "someone";
}

// ---------------------------------------------------------------- DOM refs

const $ = (sel) => document.querySelector(sel);
const dom = {
  status: $("#status"),
  statusText: $("#status .status-text"),
  me: $("#me"),
  nickButton: $("#nick-button"),
  sidebar: $("#sidebar"),
  sidebarToggle: $("#sidebar-toggle"),
  sidebarClose: $("#sidebar-close"),
  backdrop: $("#sidebar-backdrop"),
  online: $("#online"),
  onlineCount: $("#online-count"),
  onlineBadge: $("#online-count-badge"),
  conversations: $("#conversations"),
  messages: $("#messages"),
  jump: $("#jump"),
  typing: $("#typing"),
  composer: $("#composer"),
  input: $("#input"),
  send: $("#send"),
  toast: $("#toast"),
  announcer: $("#announcer"),
  nickDialog: $("#nick-dialog"),
  nickForm: $("#nick-form"),
  nickInput: $("#nick-input"),
  nickError: $("#nick-error"),
  nickTitle: $("#nick-title"),
  nickHelp: $("#nick-help"),
  nickCancel: $("#nick-cancel"),
  nickSubmit: $("#nick-submit"),
};

// ---------------------------------------------------------------- status

function setStatus(next) {
  if (!navigator.onLine) next = "offline";
  state.status = next;
  dom.status.dataset.state = next;
  let text;
  if (next === "connected") text = "Connected";
  else if (next === "offline") text = "Offline";
  else if (!started) text = "Not connected";
  else text = state.everWelcomed ? "Reconnecting…" : "Connecting…";
  if (dom.statusText.textContent !== text) dom.statusText.textContent = text;
  document.body.dataset.connection = next;
}

let toastTimer = 0;
function toast(text) {
  dom.toast.textContent = text;
  dom.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { dom.toast.hidden = true; }, 6000);
}

function announce(text) {
  const line = el("p", null, text);
  dom.announcer.append(line);
  while (dom.announcer.childElementCount > 5) dom.announcer.firstElementChild.remove();
}

// ---------------------------------------------------------------- conversations

function persistDms() {
  const list = [];
  for (const [key, conv] of state.convs) {
    if (key !== "all" && conv.listed) list.push({ id: key, nick: conv.nick });
  }
  storage.set("dms", list);
}

function makeConv(key, nick) {
  const pane = el("div", "pane");
  pane.dataset.conv = key;
  // First child of every pane: the paging marker ("Beginning of conversation",
  // "Loading…") and a button doing what scrolling to the top does.
  const top = el("div", "history-top");
  const marker = el("div", "history-marker");
  marker.setAttribute("role", "note");
  const markerButton = el("button", "link-button load-older", "Load older messages");
  markerButton.type = "button";
  markerButton.addEventListener("click", () => requestOlder(key));
  top.append(marker, markerButton);
  pane.append(top);
  const conv = {
    key,
    nick: nick || null,
    listed: key === "all",
    pane,
    top,
    marker,
    markerButton,
    floor: null, // this conversation's own floor from `with` history
    loading: false,
    unread: 0,
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

function getConv(key, nick) {
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
function listConv(key, nick) {
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

function renderTab(conv) {
  if (!conv.tab || conv.key === "all") return;
  conv.tab.querySelector(".conv-name").textContent = conv.nick || "someone";
  const online = state.online.has(conv.key);
  conv.tab.classList.toggle("is-online", online);
  conv.tab.title = `Private conversation with ${conv.nick}${online ? " (online)" : " (offline)"}`;
  conv.close.setAttribute("aria-label", `Close the conversation with ${conv.nick}`);
}

function renderBadge(conv) {
  if (!conv.badge) return;
  conv.badge.hidden = conv.unread === 0;
  conv.badge.textContent = conv.unread > 99 ? "99+" : String(conv.unread);
  conv.badge.setAttribute("aria-label", `${conv.unread} unread`);
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

function convKeyOf(msg) {
  if (!msg.to) return "all";
  const fromId = msg.from && msg.from.id;
  return isMe(fromId) ? msg.to.id : fromId;
}

function isNearBottom() {
  const m = dom.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  dom.messages.scrollTop = dom.messages.scrollHeight;
  dom.jump.hidden = true;
}

/** Run fn (which inserts into the active pane) and keep what the reader
 *  was looking at in place; stay pinned to the bottom if they were there. */
function keepScroll(fn) {
  const m = dom.messages;
  if (isNearBottom()) {
    fn();
    scrollToBottom();
    return;
  }
  const top = m.scrollTop;
  let anchor = null;
  let anchorOffset = 0;
  for (const child of m.firstElementChild ? m.firstElementChild.children : []) {
    if (child.classList.contains("history-top")) continue; // it always stays on top
    if (child.offsetTop + child.offsetHeight > top) {
      anchor = child;
      anchorOffset = child.offsetTop - top;
      break;
    }
  }
  fn();
  if (anchor && anchor.isConnected) m.scrollTop = anchor.offsetTop - anchorOffset;
}

function switchConv(key, { focus = false } = {}) {
  const next = key === "all" ? state.convs.get("all") : listConv(key);
  const prev = state.convs.get(state.active);
  if (prev && prev !== next) {
    const m = dom.messages;
    prev.scroll = { atBottom: isNearBottom(), fromBottom: m.scrollHeight - m.scrollTop };
    stopTyping();
  }
  state.active = next.key;
  dom.messages.replaceChildren(next.pane);
  if (next.scroll.atBottom) scrollToBottom();
  else dom.messages.scrollTop = dom.messages.scrollHeight - next.scroll.fromBottom;
  dom.jump.hidden = true;
  next.unread = 0;
  renderBadge(next);
  for (const tab of dom.conversations.querySelectorAll(".conv-tab")) {
    if (tab.dataset.conv === next.key) tab.setAttribute("aria-current", "true");
    else tab.removeAttribute("aria-current");
  }
  if (next.key === "all") {
    dom.input.placeholder = "Message everyone";
    dom.messages.setAttribute("aria-label", "Messages to everyone");
  } else {
    dom.input.placeholder = `Private message to ${next.nick}`;
    dom.messages.setAttribute("aria-label", `Private messages with ${next.nick}`);
  }
  document.body.classList.toggle("in-private", next.key !== "all");
  renderTyping();
  renderOnline();
  updateTitle();
  ensureFilled(next.key);
  if (focus) dom.input.focus();
}

// ---------------------------------------------------------------- history markers

function convFloor(conv) {
  // Lowest id from which this conversation is known to be complete.
  const all = state.floorAll;
  if (conv.key === "all") return all;
  if (all === null) return conv.floor;
  if (conv.floor === null) return all;
  return Math.min(all, conv.floor);
}

function atBeginning(conv) {
  const floor = convFloor(conv);
  return floor !== null && floor <= 1; // ids start at 1: nothing can be below
}

function updateMarker(conv) {
  const begin = atBeginning(conv);
  conv.marker.classList.toggle("beginning", begin);
  conv.top.classList.toggle("beginning", begin);
  conv.top.dataset.state = begin ? "beginning" : conv.loading ? "loading" : "more";
  conv.marker.hidden = !begin;
  conv.marker.textContent = !begin ? ""
    : conv.key === "all" ? "Beginning of conversation"
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

function updateAllMarkers() {
  for (const conv of state.convs.values()) updateMarker(conv);
}

// ---------------------------------------------------------------- rendering messages

function buildMessageEl({ id, fromId, fromNick, to, text, ts, own, msgState, offset }) {
  const node = el("article", "msg");
  if (own) node.classList.add("own");
  if (to) node.classList.add("private");
  if (id !== null && id !== undefined) node.dataset.id = String(id);
  if (offset) node.dataset.offset = offset;
  if (own) node.dataset.state = msgState || "sent";
  node.style.setProperty("--h", String(hue(fromId || "me")));

  node.append(avatar(fromId || "me", fromNick));
  const body = el("div", "msg-body");
  const meta = el("div", "msg-meta");
  meta.append(el("span", "msg-from", fromNick));
  if (to) {
    const tag = el("span", "msg-tag", "private");
    meta.append(tag);
    if (own) meta.append(el("span", "msg-to", `to ${to.nick || nickOf(to.id, "")}`));
  }
  const time = el("time", "msg-time", hhmm(ts));
  time.dateTime = new Date(ts).toISOString();
  time.title = fullDate(ts);
  meta.append(time);
  const textNode = el("p", "msg-text", text);
  body.append(meta, textNode);
  node.append(body);
  if (own) {
    const foot = el("div", "msg-status");
    foot.setAttribute("aria-live", "polite");
    body.append(foot);
    renderOwnState(node, msgState || "sent");
  }
  return node;
}

function renderOwnState(node, msgState, reason) {
  node.dataset.state = msgState;
  const foot = node.querySelector(".msg-status");
  if (!foot) return;
  foot.replaceChildren();
  if (msgState === "pending") {
    foot.append(el("span", "status-note", "sending…"));
  } else if (msgState === "failed") {
    foot.append(el("span", "status-note", reason ? `Not sent: ${reason}` : "Not sent"));
    const retry = el("button", "retry", "Retry");
    retry.type = "button";
    retry.dataset.action = "retry";
    const discard = el("button", "discard", "Discard");
    discard.type = "button";
    discard.dataset.action = "discard";
    discard.setAttribute("aria-label", "Discard this unsent message");
    foot.append(retry, discard);
  }
}

/** Insert a message element at its place by id: after every lower id and
 *  after notices that came later than those, before pending messages. */
function placeById(pane, node, id) {
  let cursor = pane.lastElementChild;
  let anchor = null; // insert before this
  while (cursor && cursor !== pane.firstElementChild /* marker */) {
    if (cursor.classList.contains("msg")) {
      const cid = cursor.dataset.id;
      if (cid === undefined) { anchor = cursor; cursor = cursor.previousElementSibling; continue; }
      if (Number(cid) < id) break;
    } else if (cursor.classList.contains("notice")) {
      if (Number(cursor.dataset.after || 0) < id) break;
    }
    anchor = cursor;
    cursor = cursor.previousElementSibling;
  }
  if (anchor) pane.insertBefore(node, anchor);
  else pane.append(node);
}

/** Add a stored message (live, replay or history). Returns true if new. */
function addMessage(msg, { source }) {
  const id = Number(msg.id);
  if (!Number.isSafeInteger(id) || id <= 0) return false;
  if (state.messages.has(id)) return false;
  if (!msg.from || typeof msg.from.id !== "string") return false;
  if (typeof msg.to === "string") msg = { ...msg, to: { id: msg.to, nick: nickOf(msg.to, "") } };
  if (typeof msg.text !== "string") msg = { ...msg, text: String(msg.text ?? "") };
  if (!Number.isFinite(Number(msg.ts))) msg = { ...msg, ts: Date.now() };
  const key = convKeyOf(msg);
  state.messages.set(id, { id, key });

  const own = isMe(msg.from && msg.from.id);
  let conv;
  if (key === "all") conv = state.convs.get("all");
  else {
    const other = own ? msg.to : msg.from;
    conv = listConv(key, other && other.nick);
  }
  const node = buildMessageEl({
    id, fromId: msg.from.id, fromNick: msg.from.nick, to: msg.to, text: msg.text,
    ts: msg.ts, own, msgState: "sent",
  });

  if (source === "history") {
    // The caller keeps the scroll position for the whole batch.
    placeById(conv.pane, node, id);
    return true;
  }

  const isActive = conv.key === state.active;
  const wasNearBottom = isActive && isNearBottom();
  placeById(conv.pane, node, id);
  clearTyping(conv.key, msg.from.id);

  if (isActive) {
    if (wasNearBottom || own) scrollToBottom();
    else if (node.nextElementSibling === null || !node.nextElementSibling.dataset.id) {
      dom.jump.hidden = false;
    }
  }
  if (!own) {
    if (!isActive) {
      conv.unread += 1;
      renderBadge(conv);
    } else if (Date.now() - state.welcomedAt > 1500) {
      announce(`${msg.from.nick}${msg.to ? " (private)" : ""}: ${msg.text}`);
    }
    if (document.hidden) {
      state.unreadHidden += 1;
      updateTitle();
    }
  }
  return true;
}

function addNotice(convKey, text) {
  const conv = state.convs.get(convKey);
  if (!conv) return;
  const node = el("div", "notice", text);
  node.setAttribute("role", "note");
  node.dataset.after = String(state.cursor || 0);
  const now = Date.now();
  node.title = fullDate(now);
  const isActive = conv.key === state.active;
  const wasNearBottom = isActive && isNearBottom();
  // Before pending own messages, after everything else.
  let anchor = null;
  let c = conv.pane.lastElementChild;
  while (c && c.classList.contains("msg") && c.dataset.id === undefined) {
    anchor = c;
    c = c.previousElementSibling;
  }
  if (anchor) conv.pane.insertBefore(node, anchor);
  else conv.pane.append(node);
  if (wasNearBottom) scrollToBottom();
}

function updateCursor(id) {
  if (!Number.isSafeInteger(id)) return;
  if (state.cursor === null || id > state.cursor) {
    state.cursor = id;
    storage.set("last_id", id);
  }
}

function resetMessages() {
  state.messages.clear();
  state.floorAll = null;
  state.gap = null;
  for (const conv of state.convs.values()) {
    conv.pane.replaceChildren(conv.top);
    conv.floor = null;
    conv.loading = false;
    conv.unread = 0;
    renderBadge(conv);
  }
  // Unsent messages stay on screen.
  for (const entry of state.outbox) {
    const meta = state.outboxMeta.get(entry.offset);
    if (!meta) continue;
    const conv = entry.to ? listConv(entry.to, entry.toNick) : state.convs.get("all");
    conv.pane.append(meta.el);
  }
  updateAllMarkers();
}

function updateTitle() {
  const n = state.unreadHidden;
  document.title = n > 0 ? `(${n}) quartchat` : "quartchat";
}

// ---------------------------------------------------------------- outbox

const removedOffsets = new Set(); // acked or discarded here: never written back

function saveOutbox() {
  // Merge with what other tabs of ours stored, so one tab does not erase another's.
  const mine = state.outbox.map(({ offset, text, to, toNick, ts, state: s, reason }) =>
    ({ offset, text, to, toNick, ts, state: s, reason }));
  const known = new Set(mine.map((e) => e.offset));
  const stored = storage.get("outbox", []);
  const others = Array.isArray(stored)
    ? stored.filter((e) => e && !known.has(e.offset) && !removedOffsets.has(e.offset))
    : [];
  storage.set("outbox", [...others, ...mine].sort((a, b) => (a.ts || 0) - (b.ts || 0)));
}

function showOutboxEntry(entry) {
  const conv = entry.to ? listConv(entry.to, entry.toNick) : state.convs.get("all");
  const node = buildMessageEl({
    id: null, fromId: state.user ? state.user.id : "me",
    fromNick: state.user ? state.user.nick : (state.wantedNick || "you"),
    to: entry.to ? { id: entry.to, nick: entry.toNick } : null,
    text: entry.text, ts: entry.ts, own: true, msgState: entry.state, offset: entry.offset,
  });
  if (entry.state === "failed") renderOwnState(node, "failed", entry.reason);
  conv.pane.append(node);
  state.outboxMeta.set(entry.offset, { el: node, inflight: false, sends: 0, timer: 0 });
  if (conv.key === state.active) scrollToBottom();
  return node;
}

function queueMessage(text, to, toNick) {
  const entry = {
    offset: newOffset(), text, to: to || null, toNick: toNick || null,
    ts: Date.now(), state: "pending", reason: null,
  };
  state.outbox.push(entry);
  saveOutbox();
  showOutboxEntry(entry);
  pump();
  return entry;
}

function canSend() {
  return state.welcomed && state.ws && state.ws.readyState === WebSocket.OPEN;
}

/** Send pending, not-in-flight outbox entries, oldest first: up to
 *  MAX_INFLIGHT at once normally, one at a time (spaced) after the
 *  server said rate_limited. Acks call this again. */
function pump() {
  clearTimeout(state.pauseTimer);
  state.pauseTimer = 0;
  if (!canSend()) return;
  const now = Date.now();
  if (now < state.pausedUntil) {
    state.pauseTimer = setTimeout(pump, state.pausedUntil - now + 5);
    return;
  }
  const paced = now < state.paceUntil;
  const window = paced ? 1 : MAX_INFLIGHT;
  let inflight = 0;
  for (const meta of state.outboxMeta.values()) if (meta.inflight) inflight += 1;
  for (const entry of state.outbox) {
    if (entry.state !== "pending") continue;
    const meta = state.outboxMeta.get(entry.offset);
    if (!meta || meta.inflight) continue;
    if (inflight >= window) return;
    if (paced) {
      const wait = state.lastSendAt + PACE_MS - now;
      if (wait > 0) {
        state.pauseTimer = setTimeout(pump, wait);
        return;
      }
    }
    transmit(entry, meta);
    inflight += 1;
  }
}

function transmit(entry, meta) {
  const ok = sendFrame({ type: "send", client_offset: entry.offset, text: entry.text, to: entry.to });
  if (!ok) return;
  meta.inflight = true;
  meta.sends += 1;
  state.lastSendAt = Date.now();
  clearTimeout(meta.timer);
  meta.timer = setTimeout(() => onAckTimeout(entry.offset), ACK_TIMEOUT_MS);
}

function onAckTimeout(offset) {
  const entry = state.outbox.find((e) => e.offset === offset);
  const meta = state.outboxMeta.get(offset);
  if (!entry || !meta || entry.state !== "pending") return;
  meta.inflight = false;
  if (meta.sends > MAX_RETRIES) {
    failEntry(entry, "no answer from the server");
    return;
  }
  if (canSend()) transmit(entry, meta);
}

function failEntry(entry, reason) {
  const meta = state.outboxMeta.get(entry.offset);
  entry.state = "failed";
  entry.reason = reason || null;
  saveOutbox();
  if (meta) {
    clearTimeout(meta.timer);
    meta.inflight = false;
    renderOwnState(meta.el, "failed", reason);
  }
}

function retryEntry(offset) {
  const entry = state.outbox.find((e) => e.offset === offset);
  const meta = state.outboxMeta.get(offset);
  if (!entry || !meta) return;
  entry.state = "pending";
  entry.reason = null;
  meta.sends = 0;
  meta.inflight = false;
  saveOutbox();
  renderOwnState(meta.el, "pending");
  dom.input.focus();
  pump();
}

function discardEntry(offset) {
  const meta = state.outboxMeta.get(offset);
  state.outbox = state.outbox.filter((e) => e.offset !== offset);
  removedOffsets.add(offset);
  saveOutbox();
  if (meta) {
    clearTimeout(meta.timer);
    meta.el.remove();
    state.outboxMeta.delete(offset);
  }
  dom.input.focus();
}

function onAck(frame) {
  const offset = frame.client_offset;
  const id = Number(frame.id);
  const ts = Number(frame.ts) || Date.now();
  if (Number.isSafeInteger(id)) updateCursor(id);
  const entry = state.outbox.find((e) => e.offset === offset);
  const meta = state.outboxMeta.get(offset);
  if (!entry || !meta) return;
  clearTimeout(meta.timer);
  state.outbox = state.outbox.filter((e) => e !== entry);
  state.outboxMeta.delete(offset);
  removedOffsets.add(offset);
  saveOutbox();
  const node = meta.el;
  const pane = node.parentElement;
  const pinned = !!pane && pane.dataset.conv === state.active && isNearBottom();
  state.rateStreak = 0;
  setTimeout(pump, 0);
  if (!Number.isSafeInteger(id) || id <= 0) {
    renderOwnState(node, "sent");
    return;
  }
  if (state.messages.has(id)) {
    // Already on screen (e.g. another tab of ours sent it first).
    node.remove();
    return;
  }
  const key = entry.to || "all";
  state.messages.set(id, { id, key });
  node.dataset.id = String(id);
  const time = node.querySelector(".msg-time");
  if (time) {
    time.textContent = hhmm(ts);
    time.dateTime = new Date(ts).toISOString();
    time.title = fullDate(ts);
  }
  renderOwnState(node, "sent");
  if (pane && !inPlace(node, id)) {
    const hadFocus = node.contains(document.activeElement);
    node.remove();
    placeById(pane, node, id);
    if (hadFocus) dom.input.focus();
  }
  if (pinned) scrollToBottom();
}

/** True when node (just given id) already sits between a lower id and
 *  a higher id / pending message, so it need not move. */
function inPlace(node, id) {
  let prev = node.previousElementSibling;
  while (prev && !(prev.classList.contains("msg") && prev.dataset.id !== undefined)) {
    if (prev.classList.contains("msg")) return false; // a pending one above us
    prev = prev.previousElementSibling;
  }
  let next = node.nextElementSibling;
  while (next && !next.classList.contains("msg")) next = next.nextElementSibling;
  const prevOk = !prev || Number(prev.dataset.id) < id;
  const nextOk = !next || next.dataset.id === undefined || Number(next.dataset.id) > id;
  return prevOk && nextOk;
}

function onSendError(frame) {
  const entry = state.outbox.find((e) => e.offset === frame.client_offset);
  const meta = entry && state.outboxMeta.get(entry.offset);
  if (!entry || !meta) return;
  clearTimeout(meta.timer);
  meta.inflight = false;
  if (frame.code === "rate_limited") {
    // Errors for sends already in flight belong to the same round.
    const now = Date.now();
    if (now - state.lastRateAt > 1000) state.rateStreak += 1;
    state.lastRateAt = now;
    const delay = Math.min(20_000, 1000 * 2 ** (state.rateStreak - 1)) * (0.8 + Math.random() * 0.4);
    state.pausedUntil = Math.max(state.pausedUntil, now + delay);
    state.paceUntil = now + PACE_FOR_MS;
    pump();
    return;
  }
  if (frame.code === "internal") {
    if (meta.sends > MAX_RETRIES) {
      failEntry(entry, "the server could not store it");
      return;
    }
    state.pausedUntil = Math.max(state.pausedUntil, Date.now() + 1500 + Math.random() * 1000);
    pump();
    return;
  }
  const reasons = {
    too_long: `longer than ${MAX_TEXT} characters`,
    empty: "the message is empty",
    unknown_user: "that person is unknown to the server",
    bad_offset: "internal client error",
    bad_request: "the server refused it",
  };
  failEntry(entry, reasons[frame.code] || frame.message || frame.code);
}

// ---------------------------------------------------------------- history paging

function requestOlder(key) {
  const conv = state.convs.get(key);
  if (!conv || conv.loading || atBeginning(conv)) return;
  const h = state.history;
  if (h.queue.includes(key) || (h.inflight && h.inflight.key === key)) return;
  conv.loading = true;
  updateMarker(conv);
  h.queue.push(key);
  historyNext();
}

function historyNext() {
  const h = state.history;
  if (h.inflight || !canSend()) return;
  while (h.queue.length) {
    const key = h.queue.shift();
    const conv = state.convs.get(key);
    if (!conv || atBeginning(conv)) {
      if (conv) { conv.loading = false; updateMarker(conv); }
      continue;
    }
    const floor = convFloor(conv);
    const frame = { type: "history", before_id: floor, limit: HISTORY_LIMIT };
    if (key !== "all") frame.with = key;
    if (!sendFrame(frame)) {
      h.queue.unshift(key);
      return;
    }
    h.inflight = { key, before: floor, gap: false };
    clearTimeout(h.timer);
    h.timer = setTimeout(() => historyFailed("timeout"), HISTORY_TIMEOUT_MS);
    return;
  }
  if (state.gap) fillGap();
}

function fillGap() {
  const h = state.history;
  const gap = state.gap;
  if (h.inflight || !gap || !canSend()) return;
  if (!sendFrame({ type: "history", before_id: gap.above, limit: 200 })) return;
  h.inflight = { key: null, before: gap.above, gap: true };
  clearTimeout(h.timer);
  h.timer = setTimeout(() => historyFailed("timeout"), HISTORY_TIMEOUT_MS);
}

function historyFailed(why) {
  const h = state.history;
  const ctx = h.inflight;
  clearTimeout(h.timer);
  h.inflight = null;
  if (!ctx) return;
  h.failures += 1;
  if (ctx.key !== null) {
    const conv = state.convs.get(ctx.key);
    if (conv) {
      conv.loading = false;
      if (why === "unknown_user" && ctx.key !== "all") conv.floor = 0;
      updateMarker(conv);
    }
  } else if (why === "unknown_user" || h.failures > 3) {
    if (state.gap) markGap(state.gap.below);
    state.gap = null;
  }
  if (h.failures <= 3 && why !== "unknown_user" && ctx.key !== null) {
    setTimeout(() => ensureFilled(ctx.key), 2000 * h.failures);
  }
  historyNext();
}

function onHistory(frame) {
  const h = state.history;
  const ctx = h.inflight;
  clearTimeout(h.timer);
  h.inflight = null;
  h.failures = 0;
  const list = Array.isArray(frame.messages) ? frame.messages : [];
  const hasMore = frame.has_more !== false;
  let minId = null;
  for (const msg of list) {
    const id = Number(msg.id);
    if (Number.isSafeInteger(id) && (minId === null || id < minId)) minId = id;
  }
  keepScroll(() => {
    for (const msg of list) if (msg && msg.from) addMessage(msg, { source: "history" });
  });
  if (ctx && ctx.gap) {
    const gap = state.gap;
    if (gap) {
      if (!hasMore || minId === null || minId <= gap.below + 1) state.gap = null;
      else {
        gap.above = minId;
        gap.pages += 1;
        if (gap.pages >= 3) {
          // Too far behind to stitch completely: keep everything on screen
          // and mark where messages are missing.
          markGap(gap.below);
          state.gap = null;
        }
      }
    }
  } else if (ctx) {
    // An empty page that claims more is treated as the end, so paging cannot spin.
    const floor = !hasMore || minId === null ? 0 : minId;
    if (ctx.key === "all") {
      if (floor !== null) state.floorAll = state.floorAll === null ? floor : Math.min(state.floorAll, floor);
    } else {
      const conv = state.convs.get(ctx.key);
      if (conv && floor !== null) conv.floor = conv.floor === null ? floor : Math.min(conv.floor, floor);
    }
    const conv = state.convs.get(ctx.key);
    if (conv) conv.loading = false;
  }
  updateAllMarkers();
  historyNext();
  if (ctx && ctx.key) setTimeout(() => ensureFilled(state.active), 0);
}

function markGap(belowId) {
  for (const conv of state.convs.values()) {
    if (!conv.pane.querySelector(".msg[data-id]")) continue;
    const node = el("div", "notice gap", "Some messages from while you were away are not shown here");
    node.setAttribute("role", "note");
    node.dataset.after = String(belowId);
    placeById(conv.pane, node, belowId + 0.5);
  }
}

/** Load older pages until the active view can scroll (or is complete). */
function ensureFilled(key) {
  if (!state.welcomed || key !== state.active) return;
  const conv = state.convs.get(key);
  if (!conv || conv.loading || atBeginning(conv)) return;
  const m = dom.messages;
  if (m.scrollHeight <= m.clientHeight + NEAR_TOP_PX || m.scrollTop < NEAR_TOP_PX) requestOlder(key);
}

// ---------------------------------------------------------------- presence

function renderOnline() {
  const list = [...state.online.entries()].sort((a, b) => {
    if (isMe(a[0])) return -1;
    if (isMe(b[0])) return 1;
    return a[1].localeCompare(b[1], undefined, { sensitivity: "base" });
  });
  const items = [];
  for (const [id, nick] of list) {
    const li = el("li", "online-item");
    li.dataset.userId = id;
    if (isMe(id)) {
      li.classList.add("self");
      const row = el("span", "user-row");
      row.append(avatar(id, nick), el("span", "user-nick", nick), el("span", "you-tag", "(you)"));
      li.append(row);
    } else {
      const button = el("button", "user-row user-button");
      button.type = "button";
      button.setAttribute("aria-label", `Message ${nick} privately`);
      if (state.active === id) button.setAttribute("aria-current", "true");
      button.append(avatar(id, nick), el("span", "user-nick", nick));
      const hint = el("span", "user-hint", "DM");
      hint.setAttribute("aria-hidden", "true");
      button.append(hint);
      li.append(button);
    }
    items.push(li);
  }
  dom.online.replaceChildren(...items);
  const n = state.online.size;
  dom.onlineCount.textContent = String(n);
  dom.onlineBadge.textContent = String(n);
  dom.sidebarToggle.setAttribute("aria-label", `Show who is online (${n})`);
  for (const conv of state.convs.values()) if (conv.tab && conv.key !== "all") renderTab(conv);
}

function onPresence(frame) {
  const user = frame.user || {};
  const id = user.id;
  if (!id) return;
  if (frame.event === "join") {
    state.online.set(id, user.nick);
    if (!isMe(id)) {
      addNotice("all", `${user.nick} joined`);
      const conv = state.convs.get(id);
      if (conv && conv.listed) addNotice(id, `${user.nick} joined`);
    }
  } else if (frame.event === "leave") {
    const nick = user.nick || state.online.get(id) || "someone";
    state.online.delete(id);
    for (const key of state.typingIn.keys()) clearTyping(key, id);
    if (!isMe(id)) {
      addNotice("all", `${nick} left`);
      const conv = state.convs.get(id);
      if (conv && conv.listed) addNotice(id, `${nick} left`);
    }
  } else if (frame.event === "nick") {
    const old = frame.old_nick || state.online.get(id) || "someone";
    state.online.set(id, user.nick);
    const conv = state.convs.get(id);
    if (conv) getConv(id, user.nick);
    for (const map of state.typingIn.values()) {
      const t = map.get(id);
      if (t) t.nick = user.nick;
    }
    if (isMe(id)) {
      state.user = { id, nick: user.nick };
      storage.set("user", state.user);
      dom.me.textContent = user.nick;
      if (state.nickRequest) nickRequestDone(null);
      if (state.wantedNick && state.wantedNick === user.nick) setWantedNick(null);
      addNotice("all", `${old} is now ${user.nick} (you)`);
    } else {
      addNotice("all", `${old} is now ${user.nick}`);
      if (conv && conv.listed) {
        addNotice(id, `${old} is now ${user.nick}`);
        if (state.active === id) dom.input.placeholder = `Private message to ${user.nick}`;
      }
    }
    renderTyping();
  }
  renderOnline();
}

// ---------------------------------------------------------------- typing

function sendTyping(active, to) {
  if (!canSend()) return;
  sendFrame({ type: "typing", active, to });
}

function onInputActivity() {
  const t = state.typingOut;
  const to = state.active === "all" ? null : state.active;
  if (dom.input.value.trim() === "") {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (!t.active || t.to !== to || now - t.lastSent >= TYPING_THROTTLE_MS) {
    if (t.active && t.to !== to) sendTyping(false, t.to);
    sendTyping(true, to);
    t.active = true;
    t.to = to;
    t.lastSent = now;
  }
  clearTimeout(t.idleTimer);
  t.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  const t = state.typingOut;
  clearTimeout(t.idleTimer);
  if (!t.active) return;
  t.active = false;
  t.lastSent = 0;
  sendTyping(false, t.to);
}

function onTyping(frame) {
  const user = frame.user || {};
  if (!user.id || isMe(user.id)) return;
  let key;
  if (!frame.to) key = "all";
  else if (isMe(frame.to) || (frame.to && isMe(frame.to.id))) key = user.id;
  else return; // not about a conversation of ours
  if (frame.active) {
    let map = state.typingIn.get(key);
    if (!map) { map = new Map(); state.typingIn.set(key, map); }
    const prev = map.get(user.id);
    if (prev) clearTimeout(prev.timer);
    const timer = setTimeout(() => clearTyping(key, user.id), TYPING_STALE_MS);
    map.set(user.id, { nick: user.nick || nickOf(user.id), timer });
  } else {
    clearTyping(key, user.id);
    return;
  }
  renderTyping();
}

function clearTyping(key, userId) {
  const map = state.typingIn.get(key);
  if (!map) return;
  const entry = map.get(userId);
  if (!entry) return;
  clearTimeout(entry.timer);
  map.delete(userId);
  if (key === state.active) renderTyping();
}

function renderTyping() {
  const map = state.typingIn.get(state.active);
  const nicks = map ? [...map.values()].map((t) => t.nick) : [];
  let text = "";
  if (nicks.length === 1) text = `${nicks[0]} is typing…`;
  else if (nicks.length === 2) text = `${nicks[0]} and ${nicks[1]} are typing…`;
  else if (nicks.length > 2) text = "several people are typing…";
  if (dom.typing.textContent !== text) dom.typing.textContent = text;
  dom.typing.classList.toggle("active", text !== "");
}

// ---------------------------------------------------------------- nickname

function validNick(raw) {
  const nick = raw.trim();
  if (!nick) return { error: "Please enter a nickname." };
  if (codePoints(nick) > MAX_NICK) return { error: `A nickname can be at most ${MAX_NICK} characters.` };
  if (NICK_BAD_CHARS.test(nick)) return { error: "A nickname cannot contain control characters." };
  return { nick };
}

function setWantedNick(nick) {
  state.wantedNick = nick;
  storage.set("wanted_nick", nick);
}

let nickDialogMode = "change"; // "first" | "change"

function openNickDialog(mode, { error = null, value = null } = {}) {
  nickDialogMode = mode;
  if (mode === "first") {
    dom.nickTitle.textContent = "Welcome to quartchat";
    dom.nickHelp.textContent = "Pick a nickname: this is how other people will see you (up to 32 characters).";
    dom.nickSubmit.textContent = "Join the chat";
    dom.nickCancel.textContent = "Skip";
  } else {
    dom.nickTitle.textContent = "Change your nickname";
    dom.nickHelp.textContent = "Everyone online will see the new name (up to 32 characters).";
    dom.nickSubmit.textContent = "Save";
    dom.nickCancel.textContent = "Cancel";
  }
  dom.nickInput.value = value ?? (mode === "change" && state.user ? state.user.nick : "");
  showNickError(error);
  dom.nickSubmit.disabled = false;
  if (!dom.nickDialog.open) {
    if (typeof dom.nickDialog.showModal === "function") dom.nickDialog.showModal();
    else dom.nickDialog.setAttribute("open", "");
  }
  dom.nickInput.focus();
  dom.nickInput.select();
}

function closeNickDialog() {
  if (!dom.nickDialog.open) return;
  if (typeof dom.nickDialog.close === "function") dom.nickDialog.close();
  else dom.nickDialog.removeAttribute("open");
}

function showNickError(text) {
  dom.nickError.textContent = text || "";
  dom.nickError.hidden = !text;
  if (text) dom.nickInput.setAttribute("aria-invalid", "true");
  else dom.nickInput.removeAttribute("aria-invalid");
}

function onNickSubmit(event) {
  event.preventDefault();
  const { nick, error } = validNick(dom.nickInput.value);
  if (error) {
    showNickError(error);
    dom.nickInput.focus();
    return;
  }
  showNickError(null);
  if (nickDialogMode === "first") {
    setWantedNick(nick);
    state.wantedFromDialog = true;
    dom.me.textContent = nick;
    closeNickDialog();
    startConnecting();
    dom.input.focus();
    return;
  }
  if (state.user && nick === state.user.nick) {
    closeNickDialog();
    return;
  }
  if (canSend()) {
    sendFrame({ type: "nick", nick });
    dom.nickSubmit.disabled = true;
    clearTimeout(state.nickRequest && state.nickRequest.timer);
    state.nickRequest = {
      nick,
      timer: setTimeout(() => nickRequestDone("No answer from the server; try again."), 10_000),
    };
  } else {
    setWantedNick(nick);
    state.wantedFromDialog = true;
    closeNickDialog();
    toast(`You will be renamed to ${nick} when the connection is back.`);
  }
}

function nickRequestDone(error) {
  if (!state.nickRequest) return;
  clearTimeout(state.nickRequest.timer);
  state.nickRequest = null;
  dom.nickSubmit.disabled = false;
  if (error) {
    if (!dom.nickDialog.open) openNickDialog("change");
    showNickError(error);
    dom.nickInput.focus();
  } else {
    closeNickDialog();
    dom.input.focus();
  }
}

function nickErrorText(frame, nick) {
  if (frame.code === "nick_taken") {
    return nick ? `“${nick}” is already taken by someone online. Try another one.`
      : "That nickname is already taken by someone online.";
  }
  return frame.message ? `That nickname cannot be used: ${frame.message}.` : "That nickname cannot be used.";
}

function onNickError(frame) {
  if (state.nickRequest) {
    const nick = state.nickRequest.nick;
    nickRequestDone(nickErrorText(frame, nick));
    return;
  }
  // The nick asked in hello could not be used; the welcome carried the one in force.
  const asked = state.wantedNick;
  const fromDialog = state.wantedFromDialog;
  setWantedNick(null);
  state.wantedFromDialog = false;
  const current = state.user ? state.user.nick : "a guest name";
  addNotice("all", asked ? `The nickname “${asked}” could not be used; you are ${current}.`
    : `Your nickname could not be used; you are ${current}.`);
  if (fromDialog) openNickDialog("change", { error: nickErrorText(frame, asked), value: asked || "" });
  else toast(nickErrorText(frame, asked));
}

// ---------------------------------------------------------------- socket

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function sendFrame(obj) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  try {
    ws.send(JSON.stringify(obj));
    return true;
  } catch {
    return false;
  }
}

let started = false;
function startConnecting() {
  if (started) return;
  started = true;
  setStatus(navigator.onLine ? "reconnecting" : "offline");
  connect();
}

function connect() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = 0;
  if (state.ws) return;
  if (!navigator.onLine) {
    setStatus("offline");
    return;
  }
  setStatus("reconnecting");
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  state.welcomed = false;
  state.lastFrameAt = Date.now();
  state.socketOpenedAt = Date.now();

  ws.addEventListener("open", () => {
    if (state.ws !== ws) return;
    state.lastFrameAt = Date.now();
    // The stored nick is re-read: another tab of ours may have changed it.
    const storedUser = storage.get("user") || state.user;
    const nick = state.wantedNick || (storedUser ? storedUser.nick : null) || null;
    state.helloNick = nick;
    sendFrame({
      type: "hello",
      token: state.token || null,
      nick,
      last_id: state.cursor ?? null,
      epoch: state.cursor !== null ? (state.epoch || null) : null,
    });
  });
  ws.addEventListener("message", (event) => {
    if (state.ws !== ws) return;
    state.lastFrameAt = Date.now();
    if (typeof event.data !== "string") return;
    for (const line of event.data.split("\n")) {
      if (!line.trim()) continue;
      let frame;
      try {
        frame = JSON.parse(line);
      } catch {
        console.warn("quartchat: unreadable frame", line.slice(0, 200));
        continue;
      }
      try {
        handleFrame(frame);
      } catch (err) {
        console.error("quartchat: failed to handle frame", frame, err);
      }
    }
  });
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    onSocketGone(event.code, event.reason);
  });
  ws.addEventListener("error", () => {
    /* a close event follows */
  });

  clearInterval(state.watchdogTimer);
  state.watchdogTimer = setInterval(watchdog, 5000);
}

function watchdog() {
  const ws = state.ws;
  if (!ws) return;
  const now = Date.now();
  const silent = now - state.lastFrameAt;
  if ((!state.welcomed && now - state.socketOpenedAt > WELCOME_TIMEOUT_MS) || silent > DEAD_AFTER_MS) {
    killSocket(4000, "no traffic");
  }
}

/** Give up on the current socket now, without waiting for the close handshake. */
function killSocket(code, reason) {
  const ws = state.ws;
  if (!ws) return;
  state.ws = null; // the socket's own close event is ignored from here on
  try { ws.close(1000, reason); } catch { /* already closing */ }
  onSocketGone(code, reason, true);
}

function onSocketGone(code, reason, alreadyDetached = false) {
  if (!alreadyDetached) state.ws = null;
  const wasWelcomed = state.welcomed;
  state.welcomed = false;
  clearInterval(state.pingTimer);
  clearInterval(state.watchdogTimer);
  clearTimeout(state.pauseTimer);
  // Unacked sends go back to the outbox; they are re-sent after the next welcome.
  for (const meta of state.outboxMeta.values()) {
    clearTimeout(meta.timer);
    meta.inflight = false;
    meta.sends = 0;
  }
  // Outstanding history requests are re-issued later.
  const h = state.history;
  clearTimeout(h.timer);
  const pendingKeys = [...h.queue];
  if (h.inflight && h.inflight.key) pendingKeys.push(h.inflight.key);
  h.inflight = null;
  h.queue = [];
  for (const key of pendingKeys) {
    const conv = state.convs.get(key);
    if (conv) conv.loading = false;
  }
  if (state.nickRequest) nickRequestDone("The connection dropped; try again.");
  state.typingOut.active = false;
  for (const [key, map] of state.typingIn) for (const id of [...map.keys()]) clearTyping(key, id);
  updateAllMarkers();

  if (code === 4003) {
    // Unknown token: start over as a new identity (keeping the nick).
    state.token = null;
    state.cursor = null;
    storage.set("token", null);
    storage.set("last_id", null);
    storage.set("epoch", null);
    state.epoch = null;
    if (state.user && !state.wantedNick) setWantedNick(state.user.nick);
    state.attempt = 0;
    scheduleReconnect(50);
    return;
  }
  if (code === 4001 || code === 1009) console.warn(`quartchat: server closed with ${code}`, reason);
  // Back off from scratch only if that connection actually lived a while,
  // so a server that welcomes and then drops at once is not hammered.
  if (wasWelcomed && Date.now() - state.welcomedAt > 5000) state.attempt = 0;
  scheduleReconnect(code === 1008 ? 10_000 : undefined);
}

function scheduleReconnect(fixedDelay) {
  clearTimeout(state.reconnectTimer);
  if (!navigator.onLine) {
    setStatus("offline");
    return;
  }
  setStatus("reconnecting");
  let delay = fixedDelay;
  if (delay === undefined) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    delay = base / 2 + Math.random() * (base / 2);
  }
  state.attempt += 1;
  state.reconnectTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (!started) return;
  if (state.ws) return;
  state.attempt = 0;
  connect();
}

// ---------------------------------------------------------------- frames

function handleFrame(frame) {
  switch (frame.type) {
    case "welcome": onWelcome(frame); break;
    case "message": onMessage(frame); break;
    case "ack": onAck(frame); break;
    case "presence": onPresence(frame); break;
    case "typing": onTyping(frame); break;
    case "history": onHistory(frame); break;
    case "error": onError(frame); break;
    case "pong": break;
    default: break;
  }
}

function onWelcome(frame) {
  const user = frame.user || {};
  const prevUserId = state.user ? state.user.id : null;
  const identityChanged = prevUserId !== null && prevUserId !== user.id;
  const epochChanged = state.knownEpoch !== null && frame.epoch !== state.knownEpoch;
  const sentCursor = state.cursor;

  if (identityChanged || epochChanged) {
    state.cursor = null;
    storage.set("last_id", null);
    resetMessages();
    if (state.everWelcomed) addNotice("all", epochChanged ? "The chat history was reset by the server." : "You are now using a new identity.");
  }

  state.token = frame.token || state.token;
  state.user = { id: user.id, nick: user.nick };
  state.epoch = frame.epoch ?? null;
  state.knownEpoch = state.epoch;
  storage.set("token", state.token);
  storage.set("user", state.user);
  storage.set("epoch", state.epoch);
  dom.me.textContent = user.nick;
  if (state.wantedNick && state.wantedNick === user.nick) {
    setWantedNick(null);
    state.wantedFromDialog = false;
  }

  state.online = new Map();
  for (const u of Array.isArray(frame.online) ? frame.online : []) {
    if (u && u.id) state.online.set(u.id, u.nick);
  }
  state.online.set(user.id, user.nick);

  const empty = state.messages.size === 0;
  if (frame.recovered) {
    if (empty && sentCursor !== null && !identityChanged && !epochChanged) {
      // Fresh page resuming from a stored cursor: everything after it follows;
      // what came before is fetched with history.
      state.floorAll = sentCursor + 1;
    }
    state.awaitFirstAfterWelcome = false;
  } else {
    state.awaitFirstAfterWelcome = true;
    state.gapBelow = empty ? null : state.cursor;
    if (!frame.last_id) state.floorAll = empty ? 0 : state.floorAll;
  }

  state.welcomed = true;
  state.everWelcomed = true;
  state.welcomedAt = Date.now();
  state.rateStreak = 0;
  setStatus("connected");
  clearInterval(state.pingTimer);
  state.pingTimer = setInterval(() => sendFrame({ type: "ping" }), PING_EVERY_MS);

  renderOnline();
  for (const conv of state.convs.values()) if (conv.tab && conv.key !== "all") renderTab(conv);
  updateAllMarkers();

  // A rename asked for while the hello was already on its way.
  if (state.wantedNick && state.wantedNick !== user.nick && state.wantedNick !== state.helloNick) {
    const nick = state.wantedNick;
    setWantedNick(null);
    sendFrame({ type: "nick", nick });
    state.nickRequest = { nick, timer: setTimeout(() => nickRequestDone(null), 10_000) };
  }

  // Deliver what was written while offline, in order, once each.
  pump();
  historyNext();
  setTimeout(() => ensureFilled(state.active), 50);
}

function onMessage(frame) {
  if (!frame.from || frame.id === undefined) return;
  const id = Number(frame.id);
  if (state.awaitFirstAfterWelcome) {
    state.awaitFirstAfterWelcome = false;
    if (state.floorAll === null || state.messages.size === 0) {
      state.floorAll = id;
    } else if (state.gapBelow !== null && state.gapBelow !== undefined && id > state.gapBelow + 1) {
      state.gap = { below: state.gapBelow, above: id, pages: 0 };
      setTimeout(historyNext, 0);
    }
  }
  const fresh = addMessage(frame, { source: "live" });
  updateCursor(id);
  if (fresh && state.floorAll === null) state.floorAll = id;
}

function onError(frame) {
  const code = frame.code;
  if (frame.client_offset) {
    onSendError(frame);
    return;
  }
  if (code === "nick_taken" || code === "bad_nick") {
    onNickError(frame);
    return;
  }
  if (state.history.inflight && ["bad_request", "unknown_user", "rate_limited", "internal"].includes(code)) {
    historyFailed(code);
    return;
  }
  console.warn("quartchat: server error", frame);
}

// ---------------------------------------------------------------- composer

function autoGrow() {
  const input = dom.input;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function onComposerSubmit(event) {
  event.preventDefault();
  const text = dom.input.value;
  if (!text.trim()) {
    dom.input.focus();
    return;
  }
  if (codePoints(text) > MAX_TEXT) {
    toast(`Messages can be at most ${MAX_TEXT} characters (this one has ${codePoints(text)}).`);
    return;
  }
  const convKey = state.active;
  const conv = state.convs.get(convKey);
  stopTyping();
  queueMessage(text, convKey === "all" ? null : convKey, convKey === "all" ? null : conv.nick);
  dom.input.value = "";
  autoGrow();
  dom.input.focus();
  scrollToBottom();
}

// ---------------------------------------------------------------- sidebar (phones)

const narrow = window.matchMedia("(max-width: 760px)");

function setSidebar(open) {
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

function wire() {
  dom.composer.addEventListener("submit", onComposerSubmit);
  dom.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      dom.composer.requestSubmit ? dom.composer.requestSubmit() : onComposerSubmit(event);
    }
  });
  dom.input.addEventListener("input", () => {
    autoGrow();
    onInputActivity();
  });
  dom.input.addEventListener("blur", () => {
    if (dom.input.value.trim() === "") stopTyping();
  });

  dom.messages.addEventListener("scroll", () => {
    if (dom.messages.scrollTop < NEAR_TOP_PX) requestOlder(state.active);
    if (isNearBottom()) dom.jump.hidden = true;
  }, { passive: true });
  dom.messages.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const node = button.closest(".msg");
    if (!node || !node.dataset.offset) return;
    if (button.dataset.action === "retry") retryEntry(node.dataset.offset);
    else if (button.dataset.action === "discard") discardEntry(node.dataset.offset);
  });
  dom.jump.addEventListener("click", () => {
    scrollToBottom();
    dom.input.focus();
  });

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

  dom.online.addEventListener("click", (event) => {
    const li = event.target.closest("li[data-user-id]");
    if (!li || isMe(li.dataset.userId)) return;
    const id = li.dataset.userId;
    listConv(id, state.online.get(id));
    if (narrow.matches) setSidebar(false);
    switchConv(id, { focus: true });
  });

  dom.nickButton.addEventListener("click", () => openNickDialog(started ? "change" : "first"));
  dom.nickForm.addEventListener("submit", onNickSubmit);
  dom.nickCancel.addEventListener("click", () => {
    if (nickDialogMode === "first") {
      setWantedNick(null);
      closeNickDialog();
      startConnecting();
      dom.input.focus();
      return;
    }
    if (state.nickRequest) { clearTimeout(state.nickRequest.timer); state.nickRequest = null; }
    closeNickDialog();
    dom.nickButton.focus();
  });
  dom.nickDialog.addEventListener("cancel", (event) => {
    // Escape: on the first visit it means "skip", otherwise "cancel".
    event.preventDefault();
    dom.nickCancel.click();
  });
  dom.nickInput.addEventListener("input", () => showNickError(null));

  dom.sidebarToggle.addEventListener("click", () => setSidebar(!document.body.classList.contains("sidebar-open")));
  dom.sidebarClose.addEventListener("click", () => { setSidebar(false); dom.sidebarToggle.focus(); });
  dom.backdrop.addEventListener("click", () => setSidebar(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) {
      setSidebar(false);
      dom.sidebarToggle.focus();
    }
  });
  const onNarrowChange = () => setSidebar(false);
  if (narrow.addEventListener) narrow.addEventListener("change", onNarrowChange);

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
      if (!state.ws && started && navigator.onLine) reconnectNow();
    }
  });
}

function boot() {
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
