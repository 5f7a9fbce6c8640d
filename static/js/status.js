// Connection status pill, toasts, screen-reader announcements and the tab title.

import { el } from "./util.js";
import { state } from "./state.js";
import { dom } from "./dom.js";

export function setStatus(next) {
  if (!navigator.onLine) next = "offline";
  else if (state.banned) next = "banned"; // nothing reconnects after a ban
  else if (state.signInNeeded && next !== "connected") next = "signin"; // nor without a login
  state.status = next;
  dom.status.dataset.state = next;
  let text;
  if (next === "connected") text = "Connected";
  else if (next === "banned") text = "Banned";
  else if (next === "offline") text = "Offline";
  else if (next === "signin") text = "Not signed in";
  else if (!state.started) text = "Not connected";
  else text = state.everWelcomed ? "Reconnecting…" : "Connecting…";
  if (dom.statusText.textContent !== text) dom.statusText.textContent = text;
  document.body.dataset.connection = next;
  // Who is online is only known while connected: say so rather than show
  // people as online on stale information.
  dom.onlineStale.hidden = next === "connected";
}

let toastTimer = 0;
export function toast(text) {
  dom.toast.textContent = text;
  dom.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { dom.toast.hidden = true; }, 6000);
}

export function announce(text) {
  const line = el("p", null, text);
  dom.announcer.append(line);
  while (dom.announcer.childElementCount > 5) dom.announcer.firstElementChild.remove();
}

/** The tab's title counts what is unread: every conversation's badge, and
 *  what came into the shown one while the tab was hidden. */
export function updateTitle() {
  let n = state.unreadHidden;
  for (const conv of state.convs.values()) n += conv.unread;
  document.title = n > 0 ? `(${n}) quartchat` : "quartchat";
}
