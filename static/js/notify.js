// Browser notifications for private messages and mentions of this reader
// that arrive live while the tab is hidden. Permission is asked only from the
// "Notify me" button's click (a user's gesture), never on load; replayed and
// history messages never notify.

import { isMe, state } from "./state.js";
import { dom } from "./dom.js";
import { switchConv } from "./navigation.js";
import { roomKey } from "./conversations.js";

/** Longest notification body, in code points: a preview, not the message. */
const BODY_MAX = 200;

// Messages up to the welcome's snapshot (`welcome.last_id`) are the replay;
// only those above it arrived live.
let replayUpTo = Infinity;

function supported() {
  return typeof window.Notification === "function";
}

/** Show the "Notify me" button while permission is still to be asked, and
 *  what was decided once it has been. */
function renderControl() {
  const asked = supported() ? window.Notification.permission : "unsupported";
  dom.notifyButton.hidden = asked !== "default";
  dom.notifyNote.hidden = asked === "default";
  dom.notifyNote.textContent = asked === "granted"
    ? "Private messages and mentions notify you while this tab is hidden."
    : asked === "denied"
      ? "Notifications are blocked for this site in the browser's settings."
      : "This browser cannot show notifications.";
}

export function wireNotify() {
  dom.notifyButton.addEventListener("click", async () => {
    if (!supported()) return;
    try {
      await window.Notification.requestPermission();
    } catch {
      // An old browser without the promise form: nothing more to do.
    }
    renderControl();
  });
  renderControl();
}

/** A welcome came: everything up to its `last_id` is replay. */
export function noteWelcome(lastId) {
  replayUpTo = Number.isSafeInteger(lastId) ? lastId : 0;
}

/** A message frame was added: notify if it arrived live while the tab is
 *  hidden and is a private message to this reader or names them. */
export function notifyIfWanted(msg) {
  if (!supported() || window.Notification.permission !== "granted") return;
  if (document.visibilityState !== "hidden") return;
  if (!msg.from || typeof msg.from.id !== "string" || isMe(msg.from.id)) return;
  if (!(Number(msg.id) > replayUpTo)) return;
  const mentioned = !msg.to && Array.isArray(msg.mentions) && !!state.user && msg.mentions.includes(state.user.id);
  if (!msg.to && !mentioned) return;
  const key = msg.to ? msg.from.id : roomKey(typeof msg.room === "string" ? msg.room : null);
  const nick = typeof msg.from.nick === "string" ? msg.from.nick : "someone";
  const conv = state.convs.get(key);
  const where = conv && conv.room ? conv.room.name : "general";
  const title = msg.to ? `${nick} (private)` : `${nick} mentioned you in ${where}`;
  const text = [...String(msg.text ?? "")];
  const body = text.length > BODY_MAX ? `${text.slice(0, BODY_MAX).join("")}…` : text.join("");
  let notification;
  try {
    // The title and body are shown by the browser as plain text.
    notification = new window.Notification(title, { body, tag: `quartchat-${msg.id}` });
  } catch {
    return; // e.g. a browser that only allows notifications from a service worker
  }
  notification.onclick = () => {
    window.focus();
    if (state.convs.has(key)) switchConv(key, { focus: true });
    notification.close();
  };
}
