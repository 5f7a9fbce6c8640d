// History paging: loading older pages per conversation and stitching gaps after a resume.

import { HISTORY_LIMIT, HISTORY_TIMEOUT_MS, NEAR_TOP_PX } from "./constants.js";
import { el } from "./util.js";
import { state } from "./state.js";
import { dom, keepScroll } from "./dom.js";
import { canSend, sendFrame } from "./socket.js";
import { atBeginning, convFloor, roomIdOf, roomKey, updateAllMarkers, updateMarker } from "./conversations.js";
import { addMessage, placeById } from "./messages.js";
import { relayout } from "./days.js";
import { markRead } from "./reads.js";

export function requestOlder(key) {
  const conv = state.convs.get(key);
  if (!conv || conv.loading || atBeginning(conv)) return;
  const h = state.history;
  if (h.queue.includes(key) || (h.inflight && h.inflight.key === key)) return;
  conv.loading = true;
  updateMarker(conv);
  h.queue.push(key);
  historyNext();
}

export function historyNext() {
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
    // "all" asks without a room: general and the private messages (version 1's view).
    const room = key === "all" ? null : roomIdOf(key);
    if (room) frame.room = room;
    else if (key !== "all") frame.with = key;
    if (!sendFrame(frame)) {
      h.queue.unshift(key);
      return;
    }
    h.inflight = { key, before: floor, gap: false, room, with: frame.with || null };
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
  h.inflight = { key: null, before: gap.above, gap: true, room: null, with: null };
  clearTimeout(h.timer);
  h.timer = setTimeout(() => historyFailed("timeout"), HISTORY_TIMEOUT_MS);
}

export function historyFailed(why) {
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
      const gone = why === "unknown_user" || why === "unknown_room" || why === "not_member";
      if (gone && ctx.key !== "all") conv.floor = 0;
      updateMarker(conv);
    }
  } else if (why === "unknown_user" || h.failures > 3) {
    if (state.gap) markGap(state.gap.below);
    state.gap = null;
  }
  if (h.failures <= 3 && !["unknown_user", "unknown_room", "not_member"].includes(why) && ctx.key !== null) {
    setTimeout(() => ensureFilled(ctx.key), 2000 * h.failures);
  }
  historyNext();
}

/** Whether a history frame answers the request in flight: the same room or
 *  person and the same `before_id` (answers echo both). Anything else that
 *  names a room is the backlog a join brings. */
function answers(frame, ctx) {
  if (!ctx) return false;
  const room = typeof frame.room === "string" ? frame.room : null;
  const withUser = typeof frame.with === "string" ? frame.with : null;
  if (ctx.room !== room || ctx.with !== withUser) return false;
  return frame.before_id === undefined || (frame.before_id ?? null) === (ctx.before ?? null);
}

/** The newest messages of a room just joined (or invited to): they fill its
 *  view, which is then complete from the oldest of them. */
function onBacklog(frame) {
  const list = Array.isArray(frame.messages) ? frame.messages : [];
  const key = roomKey(frame.room);
  const conv = state.convs.get(key);
  if (!conv) return;
  let minId = null;
  const add = () => {
    for (const msg of list) {
      if (!msg || !msg.from) continue;
      addMessage({ ...msg, room: frame.room }, { source: "history" });
      const id = Number(msg.id);
      if (Number.isSafeInteger(id) && (minId === null || id < minId)) minId = id;
    }
  };
  if (key === state.active) keepScroll(add);
  else add();
  const floor = frame.has_more === false || minId === null ? 0 : minId;
  conv.floor = conv.floor === null ? floor : Math.min(conv.floor, floor);
  updateMarker(conv);
  if (key === state.active) markRead(conv);
}

export function onHistory(frame) {
  const h = state.history;
  if (!answers(frame, h.inflight)) {
    if (typeof frame.room === "string" && frame.room !== "general") onBacklog(frame);
    return;
  }
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
  if (ctx && ctx.key === state.active) markRead(state.convs.get(state.active));
}

function markGap(belowId) {
  for (const conv of state.convs.values()) {
    if (!conv.pane.querySelector(".msg[data-id]")) continue;
    const node = el("div", "notice gap", "Some messages from while you were away are not shown here");
    node.setAttribute("role", "note");
    node.dataset.after = String(belowId);
    placeById(conv.pane, node, belowId + 0.5);
    relayout(node);
  }
}

/** Load older pages until the active view can scroll (or is complete). */
export function ensureFilled(key) {
  if (!state.welcomed || key !== state.active) return;
  const conv = state.convs.get(key);
  if (!conv || conv.loading || atBeginning(conv)) return;
  const m = dom.messages;
  if (m.scrollHeight <= m.clientHeight + NEAR_TOP_PX || m.scrollTop < NEAR_TOP_PX) requestOlder(key);
}
