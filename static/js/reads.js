// Read markers: telling the server what this reader has seen (a `read`
// with the newest id of the conversation on screen), and taking the markers
// other tabs of the same user moved (`read` frames), which clear badges here.

import { state } from "./state.js";
import { canSend, sendFrame } from "./socket.js";
import { renderBadge, roomIdOf } from "./conversations.js";

let timer = 0;

/** Send `read` for a conversation if it shows something newer than its
 *  marker and the reader can see it (the tab is not hidden). */
export function markRead(conv) {
  if (!conv || !state.roomsServed || !canSend()) return;
  if (document.visibilityState === "hidden") return;
  if (!(conv.newest > conv.readId)) return;
  const roomId = roomIdOf(conv.key);
  const frame = roomId ? { type: "read", room: roomId, id: conv.newest } : { type: "read", with: conv.key, id: conv.newest };
  if (sendFrame(frame)) conv.readId = conv.newest;
}

/** markRead for the shown conversation, soon: a burst of messages sends one. */
export function markActiveSoon() {
  if (timer) return;
  timer = setTimeout(() => {
    timer = 0;
    markRead(state.convs.get(state.active));
  }, 300);
}

/** Unread messages of a conversation as far as this page knows them:
 *  others' messages above its read marker. */
function recount(conv) {
  let unread = 0;
  let mentions = 0;
  for (const m of state.messages.values()) {
    if (m.key !== conv.key || !m.other || m.id <= conv.readId) continue;
    unread += 1;
    if (m.mention) mentions += 1;
  }
  conv.unread = unread;
  conv.mentions = mentions;
}

/** A `read` frame: this user's marker in a room or private conversation
 *  (moved by this tab or another one) is now at `id`. */
export function onRead(frame) {
  const id = Number(frame.id);
  if (!Number.isSafeInteger(id)) return;
  let conv = null;
  if (typeof frame.room === "string") conv = state.convs.get(frame.room === "general" ? "all" : `room:${frame.room}`);
  else if (typeof frame.with === "string") conv = state.convs.get(frame.with);
  if (!conv || id < conv.readId) return;
  conv.readId = id;
  if (conv.key === state.active) return; // shown here: already nothing unread
  recount(conv);
  renderBadge(conv);
}
