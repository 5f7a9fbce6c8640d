// The one mutable client state (restored from storage at load) and who-is-who lookups on it.

import { DEFAULT_MAX_NICK, DEFAULT_MAX_TEXT } from "./constants.js";
import { storage } from "./storage.js";

export const state = {
  token: storage.get("token"),
  user: storage.get("user"), // {id, nick}
  cursor: storage.get("last_id"), // highest message id seen
  epoch: storage.get("epoch"),
  knownEpoch: storage.get("epoch"), // kept even when the cursor is dropped
  wantedNick: storage.get("wanted_nick"), // asked for, not yet confirmed
  wantedFromDialog: false,
  // The server's limits, from the last welcome (code points).
  limits: { text: DEFAULT_MAX_TEXT, nick: DEFAULT_MAX_NICK, ...storage.get("limits", {}) },

  status: "reconnecting",
  started: false, // startConnecting() has run (the first-visit dialog holds it back)
  holdForNick: false, // the first-visit nick was refused: no reconnecting until a new one
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

  convs: new Map(), // key -> conversation view ("all" = general, "room:<id>", or a user id)
  active: "all",

  // Rooms (protocol 1.1): the ones this user is in, by id (general's is "general").
  rooms: new Map(), // id -> {id, name, kind, topic, role}
  roomsServed: false, // the last welcome carried `rooms`: the server serves them
  countedUpTo: 0, // messages up to this id are in the welcome's unread counts
  members: new Map(), // room id -> [{id, nick, role, online}], from `members` answers
  known: new Map(), // user id -> nick: everyone seen (online, authors, members)

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

  // Moderation (protocol 1.1): a chat-wide admin (the welcome's `admin`), a
  // banned user's page (closed with 4009: it stops reconnecting), and the
  // mutes this user is under: room id, or "*" for everywhere -> until (ms;
  // Infinity for good).
  admin: false,
  banned: false,
  // A chat for signed-in users only refused this visitor (signin.js): no
  // reconnecting until a reload, the tab shown again, or back online.
  signInNeeded: false,
  mutes: new Map(),

  nickRequest: null, // {nick, timer} while a nick change waits for an answer
  unreadHidden: 0,
};

export function isMe(id) {
  return !!state.user && id === state.user.id;
}

export function nickOf(id, fallback) {
  if (state.online.has(id)) return state.online.get(id);
  const conv = state.convs.get(id);
  if (conv && conv.nick) return conv.nick;
  return fallback || "someone";
}
