// A chat for signed-in users only (the server's QUARTCHAT_GUESTS=0 refuses a
// hello without a JWT: 4003, "this chat takes logins by jwt only"). The page
// then says so and stops knocking: it tries again once on a reload, when the
// tab is shown again or when it comes back online, and a JWT the hook has
// meanwhile (a login in another tab) lets it in. Remembered across reloads,
// so a visitor not signed in is not asked a nickname first.

import { storage } from "./storage.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { setStatus } from "./status.js";
import { closeFirstVisitDialog } from "./nick.js";

export const LOGINS_ONLY_REASON = "this chat takes logins by jwt only";

/** Refused for want of a login: show the notice; connection.js stops reconnecting. */
export function needSignIn() {
  state.signInNeeded = true;
  storage.set("signin_needed", true);
  dom.signIn.hidden = false;
  closeFirstVisitDialog();
  setStatus("signin");
}

/** Let in (signed in now, or guests are welcome again): the notice goes. */
export function signInDone() {
  state.signInNeeded = false;
  storage.set("signin_needed", null);
  dom.signIn.hidden = true;
}

/** The server says it admits no guests (<meta name="quartchat-guests"
 * content="0">), or an earlier visit was refused for want of a login. */
export function signInWasNeeded() {
  const meta = document.querySelector('meta[name="quartchat-guests"]');
  if (meta && meta.getAttribute("content") === "0") return true;
  return storage.get("signin_needed") === true;
}
