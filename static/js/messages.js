// Putting stored messages and notices into conversation panes, in id order, and tracking the cursor.

import { storage } from "./storage.js";
import { avatar, el, fullDate, hhmm, hue } from "./util.js";
import { isMe, nickOf, state } from "./state.js";
import { dom, isNearBottom, scrollToBottom } from "./dom.js";
import { announce, updateTitle } from "./status.js";
import { clearTyping } from "./typing.js";
import { listConv, renderBadge, roomKey, updateAllMarkers } from "./conversations.js";
import { roomConv } from "./rooms.js";
import { markActiveSoon } from "./reads.js";
import { relayout } from "./days.js";
import { renderText } from "./richtext.js";
import { addActions, refreshMessage } from "./msgparts.js";

function convKeyOf(msg) {
  if (!msg.to) return roomKey(typeof msg.room === "string" ? msg.room : null);
  const fromId = msg.from && msg.from.id;
  return isMe(fromId) ? msg.to.id : fromId;
}

export function buildMessageEl({ id, fromId, fromNick, to, text, ts, own, msgState, offset, mentioned }) {
  const node = el("article", "msg");
  // Focusable, so a keyboard reader can reach every message and see its time.
  node.tabIndex = 0;
  if (own) node.classList.add("own");
  if (to) node.classList.add("private");
  if (mentioned) node.classList.add("mentioned");
  if (id !== null && id !== undefined) node.dataset.id = String(id);
  if (offset) node.dataset.offset = offset;
  if (own) node.dataset.state = msgState || "sent";
  node.dataset.from = fromId || "me";
  node.dataset.ts = String(ts);
  node.style.setProperty("--h", String(hue(fromId || "me")));

  node.append(avatar(fromId || "me", fromNick));
  const body = el("div", "msg-body");
  const meta = el("div", "msg-meta");
  // Someone else's name in a public message starts a private conversation
  // with them, online or not. Its name holds the visible nick (label in name).
  const canMessage = !own && !to && fromId;
  const from = el(canMessage ? "button" : "span", "msg-from", fromNick);
  from.dir = "auto";
  if (canMessage) {
    from.type = "button";
    from.classList.add("msg-from-button");
    from.dataset.action = "private";
    from.dataset.user = fromId;
    from.setAttribute("aria-label", `Message ${fromNick} privately`);
    from.title = `Message ${fromNick} privately`;
  }
  meta.append(from);
  if (to) {
    const tag = el("span", "msg-tag", "private");
    meta.append(tag);
    if (own) meta.append(el("span", "msg-to", `to ${to.nick || nickOf(to.id, "")}`));
  }
  if (mentioned) meta.append(el("span", "msg-tag mention-tag", "mentions you"));
  const time = el("time", "msg-time", hhmm(ts));
  time.dateTime = new Date(ts).toISOString();
  time.title = fullDate(ts);
  meta.append(time);
  const textNode = el("div", "msg-text");
  textNode.dir = "auto";
  textNode.append(renderText(text));
  body.append(meta, textNode);
  node.append(body);
  // A grouped message shows no header; its time appears beside it on hover
  // and focus instead (style.css), the full date in its tooltip.
  const sideTime = el("time", "msg-side-time", hhmm(ts));
  sideTime.dateTime = time.dateTime;
  sideTime.title = time.title;
  node.append(sideTime);
  if (own) {
    const foot = el("div", "msg-status");
    foot.setAttribute("aria-live", "polite");
    body.append(foot);
    renderOwnState(node, msgState || "sent");
  }
  return node;
}

export function renderOwnState(node, msgState, reason) {
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
export function placeById(pane, node, id) {
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
export function addMessage(msg, { source }) {
  const id = Number(msg.id);
  if (!Number.isSafeInteger(id) || id <= 0) return false;
  if (state.messages.has(id)) return false;
  if (!msg.from || typeof msg.from.id !== "string") return false;
  if (typeof msg.to === "string") msg = { ...msg, to: { id: msg.to, nick: nickOf(msg.to, "") } };
  if (typeof msg.text !== "string") msg = { ...msg, text: String(msg.text ?? "") };
  if (!Number.isFinite(Number(msg.ts))) msg = { ...msg, ts: Date.now() };
  const own = isMe(msg.from && msg.from.id);
  let conv;
  if (msg.to) {
    const other = own ? msg.to : msg.from;
    conv = listConv(convKeyOf(msg), other && other.nick);
  } else {
    conv = roomConv(typeof msg.room === "string" ? msg.room : "general");
  }
  const key = conv.key;
  const mentioned = !own && Array.isArray(msg.mentions) && !!state.user && msg.mentions.includes(state.user.id);
  // As it is now (protocol 1.1): edited (its last text, edited_ts), or
  // deleted (no text at all).
  const deleted = msg.deleted === true;
  const editedTs = Number.isSafeInteger(msg.edited_ts) ? msg.edited_ts : 0;
  state.messages.set(id, { id, key, other: !own, mention: mentioned, text: deleted ? "" : msg.text, editedTs, deleted });
  if (typeof msg.from.nick === "string" && !own) state.known.set(msg.from.id, msg.from.nick);
  if (id > conv.newest) conv.newest = id;
  const node = buildMessageEl({
    id, fromId: msg.from.id, fromNick: msg.from.nick, to: msg.to, text: msg.text,
    ts: msg.ts, own, msgState: "sent", mentioned,
  });
  addActions(node, { own, isPrivate: !!msg.to, fromNick: msg.from.nick });
  refreshMessage(id, node);

  if (source === "history") {
    // The caller keeps the scroll position for the whole batch.
    placeById(conv.pane, node, id);
    relayout(node);
    return true;
  }

  const isActive = conv.key === state.active;
  const wasNearBottom = isActive && isNearBottom();
  placeById(conv.pane, node, id);
  relayout(node);
  clearTyping(conv.key, msg.from.id);

  if (isActive) {
    if (wasNearBottom || own) scrollToBottom();
    else if (node.nextElementSibling === null || !node.nextElementSibling.dataset.id) {
      dom.jump.hidden = false;
    }
  }
  if (!own) {
    // Replayed messages up to the welcome's snapshot are in its counts already.
    const counted = id <= state.countedUpTo || id <= conv.readId;
    if (!isActive && !counted) {
      conv.unread += 1;
      if (mentioned) conv.mentions += 1;
      renderBadge(conv);
    } else if (isActive && !deleted && Date.now() - state.welcomedAt > 1500) {
      announce(`${msg.from.nick}${msg.to ? " (private)" : conv.room && conv.key !== "all" ? ` in ${conv.room.name}` : ""}: ${msg.text}`);
    }
    if (isActive) markActiveSoon();
    if (document.hidden && isActive) { // the other conversations count in their badges
      state.unreadHidden += 1;
      updateTitle();
    }
  }
  return true;
}

export function addNotice(convKey, text) {
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
  relayout(node);
  if (wasNearBottom) scrollToBottom();
}

export function updateCursor(id) {
  if (!Number.isSafeInteger(id)) return;
  if (state.cursor === null || id > state.cursor) {
    state.cursor = id;
    storage.set("last_id", id);
  }
}

export function resetMessages() {
  state.messages.clear();
  state.floorAll = null;
  state.gap = null;
  for (const conv of state.convs.values()) {
    conv.pane.replaceChildren(conv.top);
    conv.floor = null;
    conv.loading = false;
    conv.unread = 0;
    conv.mentions = 0;
    conv.newest = 0;
    conv.readId = 0;
    renderBadge(conv);
  }
  // Unsent messages stay on screen. (An edit has no element of its own: the
  // message it changes shows it, once that is on screen again.)
  for (const entry of state.outbox) {
    const meta = state.outboxMeta.get(entry.offset);
    if (!meta || !meta.el) continue;
    const conv = entry.to ? listConv(entry.to, entry.toNick) : roomConv(entry.room || "general");
    conv.pane.append(meta.el);
    relayout(meta.el);
  }
  updateAllMarkers();
}
