// The outbox: messages written here, and edits of our own messages,
// persisted until acked, sent in order with retries and rate-limit pacing.
// An edit (`kind: "edit"`, with its `target`) has no bubble of its own: the
// message it changes shows it (msgparts.js) while it is on its way.

import { ACK_TIMEOUT_MS, MAX_INFLIGHT, MAX_RETRIES, PACE_FOR_MS, PACE_MS } from "./constants.js";
import { storage } from "./storage.js";
import { fullDate, hhmm, randomId } from "./util.js";
import { state } from "./state.js";
import { dom, isNearBottom, scrollToBottom } from "./dom.js";
import { canSend, sendFrame } from "./socket.js";
import { listConv, roomIdOf, roomKey } from "./conversations.js";
import { roomConv } from "./rooms.js";
import { buildMessageEl, placeById, renderOwnState, updateCursor } from "./messages.js";
import { relayout, removeAndRelayout } from "./days.js";
import { addActions, messageNode, refreshMessage } from "./msgparts.js";
import { muteIn, mutedReason, setMute } from "./mutes.js";
import { announce } from "./status.js";

const sessionPrefix = randomId(8);
let offsetCounter = 0;

function newOffset() {
  offsetCounter += 1;
  return `${sessionPrefix}-${Date.now().toString(36)}-${offsetCounter}`;
}

const removedOffsets = new Set(); // acked or discarded here: never written back

function saveOutbox() {
  // Merge with what other tabs of ours stored, so one tab does not erase another's.
  const mine = state.outbox.map(({ offset, kind, target, text, to, toNick, room, ts, state: s, reason }) =>
    ({ offset, kind, target, text, to, toNick, room, ts, state: s, reason }));
  const known = new Set(mine.map((e) => e.offset));
  const stored = storage.get("outbox", []);
  const others = Array.isArray(stored)
    ? stored.filter((e) => e && !known.has(e.offset) && !removedOffsets.has(e.offset))
    : [];
  storage.set("outbox", [...others, ...mine].sort((a, b) => (a.ts || 0) - (b.ts || 0)));
}

export function showOutboxEntry(entry) {
  if (entry.kind === "edit") {
    state.outboxMeta.set(entry.offset, { el: null, inflight: false, sends: 0, timer: 0 });
    refreshMessage(entry.target);
    return null;
  }
  const conv = entry.to ? listConv(entry.to, entry.toNick) : roomConv(entry.room || "general");
  const node = buildMessageEl({
    id: null, fromId: state.user ? state.user.id : "me",
    fromNick: state.user ? state.user.nick : (state.wantedNick || "you"),
    to: entry.to ? { id: entry.to, nick: entry.toNick } : null,
    text: entry.text, ts: entry.ts, own: true, msgState: entry.state, offset: entry.offset,
  });
  if (entry.state === "failed") renderOwnState(node, "failed", entry.reason);
  conv.pane.append(node);
  relayout(node);
  state.outboxMeta.set(entry.offset, { el: node, inflight: false, sends: 0, timer: 0 });
  if (conv.key === state.active) scrollToBottom();
  return node;
}

/** Queue a message: to a person (`to`, private) or into a room (`room`, general when null). */
export function queueMessage(text, to, toNick, room = null) {
  const entry = {
    offset: newOffset(), text, to: to || null, toNick: toNick || null,
    room: to ? null : (room || "general"),
    ts: Date.now(), state: "pending", reason: null,
  };
  state.outbox.push(entry);
  saveOutbox();
  showOutboxEntry(entry);
  pump();
  return entry;
}

/** Queue an edit of our message `target` (its new text, trimmed): shown on
 *  the message at once, sent in order with the sends, kept across reloads,
 *  retried with the same client_offset until acked. */
export function queueEdit(target, text) {
  const m = state.messages.get(target);
  const entry = {
    offset: newOffset(), kind: "edit", target, text, to: null, toNick: null,
    room: null, ts: Date.now(), state: "pending", reason: null,
  };
  if (m && m.key && m.key !== "all" && !m.key.startsWith("room:")) entry.to = m.key;
  state.outbox.push(entry);
  saveOutbox();
  showOutboxEntry(entry);
  pump();
  return entry;
}

/** Send pending, not-in-flight outbox entries, oldest first: up to
 *  MAX_INFLIGHT at once normally, one at a time (spaced) after the
 *  server said rate_limited. Acks call this again. */
export function pump() {
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
  let frame;
  if (entry.kind === "edit") {
    frame = { type: "edit", target: entry.target, text: entry.text, client_offset: entry.offset };
  } else {
    frame = { type: "send", client_offset: entry.offset, text: entry.text, to: entry.to };
    // A send names its room (general included); never both a room and a person.
    if (!entry.to) frame.room = entry.room || "general";
  }
  const ok = sendFrame(frame);
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
    if (meta.el) renderOwnState(meta.el, "failed", reason);
  }
  if (entry.kind === "edit") refreshMessage(entry.target);
}

export function retryEntry(offset) {
  const entry = state.outbox.find((e) => e.offset === offset);
  const meta = state.outboxMeta.get(offset);
  if (!entry || !meta) return;
  entry.state = "pending";
  entry.reason = null;
  meta.sends = 0;
  meta.inflight = false;
  saveOutbox();
  if (meta.el) renderOwnState(meta.el, "pending");
  if (entry.kind === "edit") refreshMessage(entry.target);
  else dom.input.focus();
  pump();
}

export function discardEntry(offset, { focus = true } = {}) {
  const meta = state.outboxMeta.get(offset);
  const entry = state.outbox.find((e) => e.offset === offset);
  state.outbox = state.outbox.filter((e) => e.offset !== offset);
  removedOffsets.add(offset);
  saveOutbox();
  if (meta) {
    clearTimeout(meta.timer);
    if (meta.el) removeAndRelayout(meta.el);
    state.outboxMeta.delete(offset);
  }
  if (entry && entry.kind === "edit") {
    // The message shows its text as the server holds it again.
    const node = messageNode(entry.target);
    const hadFocus = !!node && node.contains(document.activeElement);
    refreshMessage(entry.target, node);
    if (hadFocus && focus) node.focus();
    return;
  }
  if (focus) dom.input.focus();
}

export function onAck(frame) {
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
  state.rateStreak = 0;
  if (entry.kind === "edit") {
    // Our edit is stored: the message holds its text from now on.
    setTimeout(pump, 0);
    const m = state.messages.get(entry.target);
    if (m && !m.deleted) {
      m.text = entry.text;
      m.editedTs = ts;
    }
    refreshMessage(entry.target);
    return;
  }
  const node = meta.el;
  const pane = node.parentElement;
  const pinned = !!pane && pane.dataset.conv === state.active && isNearBottom();
  setTimeout(pump, 0);
  if (!Number.isSafeInteger(id) || id <= 0) {
    renderOwnState(node, "sent");
    return;
  }
  if (state.messages.has(id)) {
    // Already on screen (e.g. another tab of ours sent it first).
    removeAndRelayout(node);
    return;
  }
  const conv = pane ? state.convs.get(pane.dataset.conv) : null;
  const key = conv ? conv.key : (entry.to || "all");
  state.messages.set(id, { id, key, other: false, mention: false, text: entry.text, editedTs: 0, deleted: false });
  if (conv && id > conv.newest) conv.newest = id;
  node.dataset.id = String(id);
  addActions(node, { own: true, isPrivate: !!entry.to });
  node.dataset.ts = String(ts);
  for (const time of node.querySelectorAll(".msg-time, .msg-side-time")) {
    time.textContent = hhmm(ts);
    time.dateTime = new Date(ts).toISOString();
    time.title = fullDate(ts);
  }
  renderOwnState(node, "sent");
  if (pane && !inPlace(node, id)) {
    const hadFocus = node.contains(document.activeElement);
    removeAndRelayout(node);
    placeById(pane, node, id);
    if (hadFocus) dom.input.focus();
  }
  relayout(node);
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

export function onSendError(frame) {
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
  if (frame.code === "muted") {
    // Where it was going: a room's mute, or (for a private message) one
    // that holds everywhere. The note beside the composer says it too.
    const edited = entry.kind === "edit" ? state.messages.get(entry.target) : null;
    const convKey = edited ? edited.key : (entry.to || roomKey(entry.room));
    const until = typeof frame.until === "number" ? frame.until : null;
    if (!muteIn(convKey)) setMute(roomIdOf(convKey), until);
    const mute = muteIn(convKey);
    failEntry(entry, mute ? mutedReason(mute.until, mute.everywhere) : frame.message || "you are muted");
    return;
  }
  if (entry.kind === "edit" && frame.code === "unknown_message") {
    // Deleted meanwhile (its `deleted` shows that): nothing left to edit.
    discardEntry(entry.offset, { focus: false });
    announce("The message was deleted before the edit was saved.");
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
    too_long: `longer than ${state.limits.text} characters`,
    empty: "the message is empty",
    unknown_user: "that person is unknown to the server",
    unknown_room: "that room does not exist (or is private)",
    not_member: "you are not in that room",
    forbidden: entry.kind === "edit" ? "only its author may edit a message" : "you may not write there",
    unknown_message: "that message is not there any more",
    bad_offset: "internal client error",
    bad_request: "the server refused it",
  };
  failEntry(entry, reasons[frame.code] || frame.message || frame.code);
}
