// The WebSocket's lifecycle: connecting (with a JWT from the page's JWT
// hook, when it has one), hello, watchdog, reconnecting with backoff; and
// stopping for good when banned (4009), or until there is a login where the
// chat takes only logins (4003 to a hello without a JWT: signin.js).

import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, DEAD_AFTER_MS, WELCOME_TIMEOUT_MS } from "./constants.js";
import { storage } from "./storage.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { setStatus } from "./status.js";
import { sendFrame } from "./socket.js";
import { clearTyping } from "./typing.js";
import { updateAllMarkers } from "./conversations.js";
import { nickRequestDone, setWantedNick } from "./nick.js";
import { handleFrame } from "./frames.js";
import { forgetJwt, jwtUrl, loginJwt } from "./jwt.js";
import { LOGINS_ONLY_REASON, needSignIn, signInDone } from "./signin.js";

let loggingIn = false; // the JWT for the next socket is being fetched
let helloJwt = null; // the JWT the socket being opened logs in with (null: a token)

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** Start, or go on after the first-visit dialog got a new nick: on a socket
 *  still waiting for its welcome, ask again with another hello. */
export function startConnecting() {
  if (state.banned) return;
  state.holdForNick = false;
  if (!state.started) {
    state.started = true;
    setStatus(navigator.onLine ? "reconnecting" : "offline");
    connect();
  } else if (!state.ws) {
    reconnectNow();
  } else if (!state.welcomed && state.ws.readyState === WebSocket.OPEN) {
    sendHello();
  }
}

function sendHello() {
  // The stored nick is re-read: another tab of ours may have changed it.
  const storedUser = storage.get("user") || state.user;
  const nick = state.wantedNick || (storedUser ? storedUser.nick : null) || null;
  state.helloNick = nick;
  state.socketOpenedAt = Date.now(); // the welcome timeout counts from this hello
  const cursor = { last_id: state.cursor ?? null, epoch: state.cursor !== null ? (state.epoch || null) : null };
  if (state.ws) state.ws.helloHadToken = !helloJwt && !!state.token;
  if (helloJwt) {
    // Logged in by the deployment: the JWT in place of a token (its `name`
    // wins over this nick on the server).
    sendFrame({ type: "hello", jwt: helloJwt, nick, ...cursor });
    return;
  }
  sendFrame({
    type: "hello",
    token: state.token || null,
    nick,
    ...cursor,
    // A first visit's chosen nick: the server refuses it if taken, before
    // anyone sees this user, instead of starting with "nick-2".
    nick_exact: !state.token && !!nick && state.wantedFromDialog,
  });
}

function connect() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = 0;
  if (state.ws || state.holdForNick || state.banned || loggingIn) return;
  if (!navigator.onLine) {
    setStatus("offline");
    return;
  }
  setStatus("reconnecting");
  if (!jwtUrl()) {
    helloJwt = null;
    openSocket();
    return;
  }
  loggingIn = true;
  loginJwt().then((jwt) => {
    loggingIn = false;
    helloJwt = jwt;
    openSocket();
  }, (err) => {
    loggingIn = false;
    console.warn("quartchat: no JWT from the JWT URL; trying again", err);
    scheduleReconnect();
  });
}

function openSocket() {
  if (state.ws || state.holdForNick || state.banned) return;
  if (!navigator.onLine) {
    setStatus("offline");
    return;
  }
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  ws.loggedInByJwt = !!helloJwt;
  state.welcomed = false;
  state.lastFrameAt = Date.now();
  state.socketOpenedAt = Date.now();

  ws.addEventListener("open", () => {
    if (state.ws !== ws) return;
    state.lastFrameAt = Date.now();
    sendHello();
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
    onSocketGone(event.code, event.reason, false, ws.loggedInByJwt, !!ws.helloHadToken);
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
export function killSocket(code, reason) {
  const ws = state.ws;
  if (!ws) return;
  state.ws = null; // the socket's own close event is ignored from here on
  try { ws.close(1000, reason); } catch { /* already closing */ }
  onSocketGone(code, reason, true);
}

function onSocketGone(code, reason, alreadyDetached = false, byJwt = false, byToken = false) {
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

  if (code === 4009) {
    // Banned: the server refuses this user until the ban ends. Say so, and
    // do not knock again (a reload tries once more).
    state.banned = true;
    clearTimeout(state.reconnectTimer);
    const until = typeof reason === "string" && reason.startsWith("banned until ") ? reason.slice(13) : "";
    dom.bannedUntil.textContent = until ? ` The ban ends ${until}.` : "";
    dom.banned.hidden = false;
    setStatus("banned");
    return;
  }
  if (code === 4003 && !byJwt && (reason === LOGINS_ONLY_REASON || !byToken)) {
    // No JWT, and this chat takes only logins (a hello with neither a JWT
    // nor a token gets 4003 for nothing else). Say so, and stop knocking
    // until a reload, the tab shown again, or back online. The token, if
    // any, is not unknown: it is kept for a chat that lets guests in again.
    clearTimeout(state.reconnectTimer);
    needSignIn();
    return;
  }
  if (code === 4003 && byJwt) {
    // The JWT was refused (expired meanwhile, say): fetch another, with backoff.
    forgetJwt();
    scheduleReconnect();
    return;
  }
  if (code === 4003) {
    // Unknown token: start over as a new identity (keeping the nick). The
    // server lets guests in, then.
    if (state.signInNeeded) signInDone();
    state.token = null;
    state.cursor = null;
    storage.set("token", null);
    storage.set("last_id", null);
    storage.set("epoch", null);
    state.epoch = null;
    if (state.user && !state.wantedNick) setWantedNick(state.user.nick);
    if (jwtUrl()) {
      // Refused as a guest where logins come from the JWT hook: back off,
      // asking the hook again each time.
      scheduleReconnect();
      return;
    }
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
  if (state.signInNeeded) {
    // A retry without a login failed (the JWT URL, the socket): no loop;
    // the next reload, tab shown or coming online tries once more.
    setStatus("signin");
    return;
  }
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

export function reconnectNow() {
  if (!state.started || state.banned) return;
  if (state.ws) return;
  state.attempt = 0;
  connect();
}
