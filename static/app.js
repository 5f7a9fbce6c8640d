// quartchat browser client: entry point. Plain ES modules under /static/js/,
// no dependencies, no build step. This file wires the modules together,
// attaches the page-wide listeners and boots the page.
//
// Everything the user writes or receives is put into the page with
// textContent / createTextNode, never as HTML.
//
// Modules, lowest first (each imports only from modules earlier in this list):
//   constants, storage, util   tunables, localStorage, pure helpers
//   state, dom, status, socket shared state, element refs (and staying at the
//                              bottom), status/toasts, frame writes
//   counter, drafts            the composer's height and length counter; drafts
//   conversations, typing      panes, tabs, badges and history markers; typing indicators
//   rooms, reads               the rooms this user is in and the room list; read markers
//   mutes, confirm             mutes on this user and the composer's note; the confirmation dialog
//   days, richtext             day dividers and grouping; links and code in text
//   linkhost                   the host a link opens, as the page shows it (punycode when it mixes scripts)
//   msgparts                   a message's buttons, text as it is now, "edited", "message deleted"
//   messages, outbox, history  rendering messages; sending and editing; paging older ones
//   nick, presence             nickname dialog; who is online
//   navigation                 switching conversations (general, rooms, private), sidebar
//   notify                     browser notifications for private messages and mentions in a hidden tab
//   roomdialogs, msgactions    creating, finding, joining, leaving rooms, members and invites; editing, deleting
//   moderation, roomframes     roles, kicks, mutes and bans from the members dialog; the rooms' frames
//   changes                    log entries arriving: edits and deletes, the cursor after a welcome
//   jwt, signin                the JWT hook: a login from the deployment's backend; a chat for signed-in users only
//   frames, connection         server frames; the socket's lifecycle
//   mentions, composer         "@" suggestions; the message input
// Two calls go upward and are plugged in here instead of imported:
// the panes' "Load older messages" button (history) and the first-visit
// nickname dialog starting the connection.

import { NEAR_TOP_PX, OFFSET_RE } from "./js/constants.js";
import { storage } from "./js/storage.js";
import { isMe, state } from "./js/state.js";
import { dom, isNearBottom, scrollToBottom, stickToBottom } from "./js/dom.js";
import { setStatus, updateTitle } from "./js/status.js";
import { listConv, roomKey, setLoadOlder } from "./js/conversations.js";
import { restoreRooms } from "./js/rooms.js";
import { markRead } from "./js/reads.js";
import { discardEntry, queueMessage, retryEntry, showOutboxEntry } from "./js/outbox.js";
import { requestOlder } from "./js/history.js";
import { openNickDialog, wireNickDialog } from "./js/nick.js";
import { renderOnline } from "./js/presence.js";
import { setOnRoomShown, setSidebar, switchConv, wireNavigation } from "./js/navigation.js";
import { wireNotify } from "./js/notify.js";
import { wireRoomDialogs } from "./js/roomdialogs.js";
import { wireConfirm } from "./js/confirm.js";
import { wireMessageActions } from "./js/msgactions.js";
import { wireModeration } from "./js/moderation.js";
import { fetchJwt, jwtUrl } from "./js/jwt.js";
import { needSignIn, signInWasNeeded } from "./js/signin.js";
import { wantMembers } from "./js/roomframes.js";
import { wireMentions } from "./js/mentions.js";
import { killSocket, reconnectNow, startConnecting } from "./js/connection.js";
import { wireComposer } from "./js/composer.js";
import { relabelDividers } from "./js/days.js";

// ---------------------------------------------------------------- wiring

/** Open (and list) the private conversation with a message's author, who
 *  may be offline: the server takes a private `send` to any known user. */
function openPrivateWith(userId, nick) {
  if (!userId || isMe(userId)) return;
  listConv(userId, state.online.get(userId) || nick);
  switchConv(userId, { focus: true });
}

/** Listeners that belong to no single module: the message list and the page. */
function wire() {
  stickToBottom(); // before the list's other scroll listener, which asks it
  wireMentions(); // before the composer: Enter picks a suggestion while they show
  wireComposer();
  wireMessageActions();

  dom.messages.addEventListener("scroll", () => {
    if (dom.messages.scrollTop < NEAR_TOP_PX) requestOlder(state.active);
    if (isNearBottom()) dom.jump.hidden = true;
  }, { passive: true });
  dom.messages.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "private") {
      openPrivateWith(button.dataset.user, button.textContent);
      return;
    }
    const node = button.closest(".msg");
    if (!node || !node.dataset.offset) return;
    if (button.dataset.action === "retry") retryEntry(node.dataset.offset);
    else if (button.dataset.action === "discard") discardEntry(node.dataset.offset);
  });
  dom.jump.addEventListener("click", () => {
    scrollToBottom();
    dom.input.focus();
  });

  wireNavigation();
  wireNotify();
  wireRoomDialogs();
  wireConfirm();
  wireModeration();
  wireNickDialog(startConnecting);

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
      markRead(state.convs.get(state.active));
      if (!state.ws && state.started && navigator.onLine) reconnectNow();
    }
  });
}

function boot() {
  // The upward call the panes need, plugged in before the first pane exists.
  setLoadOlder(requestOlder);
  setOnRoomShown(wantMembers);
  restoreRooms(); // general ("all") first, then the rooms of the last welcome
  for (const dm of storage.get("dms", []) || []) {
    if (dm && typeof dm.id === "string") listConv(dm.id, dm.nick || "someone");
  }
  const saved = storage.get("outbox", []);
  state.outbox = Array.isArray(saved)
    ? saved.filter((e) => e && typeof e.offset === "string" && OFFSET_RE.test(e.offset) && typeof e.text === "string"
        && (e.kind !== "edit" || Number.isSafeInteger(e.target)))
        .map((e) => ({
          ...e, state: e.state === "failed" ? "failed" : "pending",
          room: e.to ? null : (typeof e.room === "string" && e.room ? e.room : "general"),
        }))
    : [];
  dom.messages.replaceChildren(state.convs.get("all").pane);
  for (const entry of state.outbox) showOutboxEntry(entry);

  wire();
  // "Today" turns into "Yesterday" at midnight, even on a page left open.
  let today = new Date().toDateString();
  setInterval(() => {
    if (new Date().toDateString() === today) return;
    today = new Date().toDateString();
    relabelDividers([...state.convs.values()].map((conv) => conv.pane));
  }, 60_000);
  setSidebar(false);
  setStatus(navigator.onLine ? "reconnecting" : "offline");
  dom.me.textContent = state.user ? state.user.nick : (state.wantedNick || "…");
  renderOnline();
  switchConv("all");

  const returning = () => !!(state.token || state.user || state.wantedNick);
  const begin = (jwt) => {
    if (!jwt && signInWasNeeded()) {
      // The chat admits no guests (its page says so), or refused this
      // visitor for want of a login last time: say so at once (no nickname
      // to ask for), and try once.
      needSignIn();
      startConnecting();
    } else if (jwt || returning()) {
      startConnecting();
    } else {
      openNickDialog("first");
    }
  };
  // Logged in to the deployment's site: no nickname to ask for (the JWT
  // names one). A guest there is asked as anywhere else.
  if (jwtUrl()) fetchJwt().catch(() => null).then(begin);
  else begin(null);
}

boot();

// A small window for tests and debugging.
window.quartchat = {
  get state() {
    return {
      status: state.status,
      user: state.user,
      admin: state.admin,
      banned: state.banned,
      signInNeeded: state.signInNeeded,
      cursor: state.cursor,
      epoch: state.epoch,
      conversation: state.active,
      online: [...state.online].map(([id, nick]) => ({ id, nick })),
      outbox: state.outbox.map((e) => ({ ...e })),
      messageIds: [...state.messages.keys()].sort((a, b) => a - b),
      rooms: [...state.rooms.values()].map((room) => {
        const conv = state.convs.get(roomKey(room.id));
        return { ...room, unread: conv ? conv.unread : 0, mentions: conv ? conv.mentions : 0 };
      }),
    };
  },
  /** Text to a person (`to`, a user id) or into a room (`room`, an id). */
  send(text, to = null, room = null) {
    const conv = to ? listConv(to, state.online.get(to)) : null;
    return queueMessage(text, to, conv ? conv.nick : null, room).offset;
  },
  /** Show general ("all" or nothing), a room ("room:<id>") or a person (a user id). */
  open(id) {
    switchConv(id || "all");
  },
  /** The ids of the messages shown in one conversation, in order. */
  idsIn(key) {
    return [...state.messages.values()].filter((m) => m.key === (key || "all")).map((m) => m.id).sort((a, b) => a - b);
  },
  reconnect() {
    if (state.ws) killSocket(4000, "manual");
    else reconnectNow();
  },
};
