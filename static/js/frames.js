// Handling frames from the server: welcome, live messages and errors; the rest is routed to its module.

import { PING_EVERY_MS } from "./constants.js";
import { storage } from "./storage.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { setStatus } from "./status.js";
import { sendFrame } from "./socket.js";
import { onTyping } from "./typing.js";
import { listConv, renderBadge, renderTab, roomIdOf, updateAllMarkers } from "./conversations.js";
import { renderPowers, takeCounts, takeWelcomeRooms } from "./rooms.js";
import { onRead } from "./reads.js";
import { addMessage, addNotice, resetMessages, updateCursor } from "./messages.js";
import { onAck, onSendError, pump } from "./outbox.js";
import { ensureFilled, historyFailed, historyNext, onHistory } from "./history.js";
import { nickAccepted, nickRequestDone, onNickError, onNickRefused, setWantedNick } from "./nick.js";
import { onPresence, renderOnline } from "./presence.js";
import { refreshComposer } from "./counter.js";
import { noteWelcome, notifyIfWanted } from "./notify.js";
import { refreshRoomBar, switchConv } from "./navigation.js";
import { onMember, onMembers, onRefError, onRooms, wantMembers } from "./roomframes.js";
import { onBan, onMute, onRole } from "./moderation.js";
import { firstAfterWelcome, onDeleted, onEdited } from "./changes.js";
import { renderMuteNote } from "./mutes.js";
import { signInDone } from "./signin.js";

export function handleFrame(frame) {
  switch (frame.type) {
    case "welcome": onWelcome(frame); break;
    case "message": onMessage(frame); break;
    case "ack": onAck(frame); break;
    case "presence": onPresence(frame); break;
    case "typing": onTyping(frame); break;
    case "history": onHistory(frame); break;
    case "error": onError(frame); break;
    case "member": onMember(frame); break;
    case "rooms": onRooms(frame); break;
    case "members": onMembers(frame); break;
    case "read": onRead(frame); break;
    case "edited": onEdited(frame); break;
    case "deleted": onDeleted(frame); break;
    case "role": onRole(frame); break;
    case "mute": onMute(frame); break;
    case "ban": onBan(frame); break;
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
  nickAccepted();
  takeLimits(frame.limits);
  noteWelcome(frame.last_id);

  state.online = new Map();
  for (const u of Array.isArray(frame.online) ? frame.online : []) {
    if (u && u.id) state.online.set(u.id, u.nick);
  }
  state.online.set(user.id, user.nick);
  for (const [id, nick] of state.online) if (id !== user.id) state.known.set(id, nick);
  // A chat-wide admin may moderate every room (before the rooms are taken).
  state.admin = frame.admin === true;
  takeRooms(frame);
  renderPowers();
  renderMuteNote();

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

  if (state.signInNeeded) signInDone(); // let in: signed in meanwhile, or guests are back
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

/** Rooms and unread counts (protocol 1.1): the rooms this user is in, with
 *  their counts, and private conversations with unread messages. Messages
 *  replayed after this welcome (up to its last_id) are in these counts. */
function takeRooms(frame) {
  state.roomsServed = Array.isArray(frame.rooms);
  state.members.clear();
  if (!state.roomsServed) {
    state.countedUpTo = 0;
    return;
  }
  state.countedUpTo = Number.isSafeInteger(frame.last_id) ? frame.last_id : 0;
  takeWelcomeRooms(frame.rooms);
  const direct = new Set();
  for (const item of Array.isArray(frame.direct) ? frame.direct : []) {
    const u = item && item.user;
    if (!u || typeof u.id !== "string") continue;
    direct.add(u.id);
    takeCounts(listConv(u.id, typeof u.nick === "string" ? u.nick : null), item);
  }
  for (const conv of state.convs.values()) {
    if (roomIdOf(conv.key) === null && !direct.has(conv.key) && conv.unread) {
      conv.unread = 0;
      renderBadge(conv);
    }
  }
  // The view shown may be of a room left meanwhile; what is shown is read.
  if (!state.convs.has(state.active)) switchConv("all");
  const active = state.convs.get(state.active);
  active.unread = 0;
  active.mentions = 0;
  renderBadge(active);
  refreshRoomBar();
  const roomId = roomIdOf(state.active);
  if (roomId) setTimeout(() => wantMembers(roomId), 0);
}

/** The server's limits replace the built-in defaults (and are kept for the
 *  next load, before its welcome). */
function takeLimits(limits) {
  if (!limits) return;
  for (const key of ["text", "nick"]) {
    if (Number.isSafeInteger(limits[key]) && limits[key] > 0) state.limits[key] = limits[key];
  }
  storage.set("limits", state.limits);
  refreshComposer();
}

function onMessage(frame) {
  if (!frame.from || frame.id === undefined) return;
  const id = Number(frame.id);
  firstAfterWelcome(id);
  const fresh = addMessage(frame, { source: "live" });
  if (fresh) notifyIfWanted(frame);
  updateCursor(id);
  if (fresh && state.floorAll === null) state.floorAll = id;
}

function onError(frame) {
  const code = frame.code;
  if (frame.ref !== undefined && frame.ref !== null && onRefError(frame)) return;
  if (frame.client_offset) {
    onSendError(frame);
    return;
  }
  if ((code === "nick_taken" || code === "bad_nick") && !state.welcomed) {
    onNickRefused(frame);
    return;
  }
  if (code === "nick_taken" || code === "bad_nick") {
    onNickError(frame);
    return;
  }
  if (state.history.inflight && ["bad_request", "unknown_user", "unknown_room", "not_member", "rate_limited", "internal"].includes(code)) {
    historyFailed(code);
    return;
  }
  console.warn("quartchat: server error", frame);
}
