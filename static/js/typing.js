// Typing indicators: sending ours (throttled) and showing other people's.

import { TYPING_IDLE_MS, TYPING_STALE_MS, TYPING_THROTTLE_MS } from "./constants.js";
import { isMe, nickOf, state } from "./state.js";
import { dom } from "./dom.js";
import { canSend, sendFrame } from "./socket.js";
import { roomIdOf, roomKey } from "./conversations.js";

/** `where` is a conversation key: a room's notice names the room (general
 *  included), a private one the person. */
function sendTyping(active, where) {
  if (!canSend()) return;
  const room = roomIdOf(where);
  sendFrame(room ? { type: "typing", active, to: null, room } : { type: "typing", active, to: where });
}

export function onInputActivity() {
  const t = state.typingOut;
  const to = state.active; // a conversation key (see sendTyping)
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

export function stopTyping() {
  const t = state.typingOut;
  clearTimeout(t.idleTimer);
  if (!t.active) return;
  t.active = false;
  t.lastSent = 0;
  sendTyping(false, t.to);
}

export function onTyping(frame) {
  const user = frame.user || {};
  if (!user.id || isMe(user.id)) return;
  let key;
  if (!frame.to) key = roomKey(typeof frame.room === "string" ? frame.room : null);
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

export function clearTyping(key, userId) {
  const map = state.typingIn.get(key);
  if (!map) return;
  const entry = map.get(userId);
  if (!entry) return;
  clearTimeout(entry.timer);
  map.delete(userId);
  if (key === state.active) renderTyping();
}

export function renderTyping() {
  const map = state.typingIn.get(state.active);
  const nicks = map ? [...map.values()].map((t) => t.nick) : [];
  let text = "";
  if (nicks.length === 1) text = `${nicks[0]} is typing…`;
  else if (nicks.length === 2) text = `${nicks[0]} and ${nicks[1]} are typing…`;
  else if (nicks.length > 2) text = "several people are typing…";
  if (dom.typing.textContent !== text) dom.typing.textContent = text;
  dom.typing.classList.toggle("active", text !== "");
}
