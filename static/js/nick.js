// The nickname dialog (first visit and renames) and nick errors from the server.

import { NICK_BAD_CHARS } from "./constants.js";
import { storage } from "./storage.js";
import { codePoints } from "./util.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { toast } from "./status.js";
import { canSend, sendFrame } from "./socket.js";
import { addNotice } from "./messages.js";

// Closing the first-visit dialog starts the connection. connection.js sits
// above this module (it routes nick frames here), so wireNickDialog() is
// handed startConnecting rather than this module importing it.
let startConnecting = () => {};

function validNick(raw) {
  const nick = raw.trim();
  if (!nick) return { error: "Please enter a nickname." };
  const max = state.limits.nick;
  if (codePoints(nick) > max) return { error: `A nickname can be at most ${max} characters.` };
  if (NICK_BAD_CHARS.test(nick)) return { error: "A nickname cannot contain control characters." };
  return { nick };
}

export function setWantedNick(nick) {
  state.wantedNick = nick;
  storage.set("wanted_nick", nick);
}

let nickDialogMode = "change"; // "first" | "change"

export function openNickDialog(mode, { error = null, value = null } = {}) {
  nickDialogMode = mode;
  if (mode === "first") {
    dom.nickTitle.textContent = "Welcome to quartchat";
    dom.nickHelp.textContent = `Pick a nickname: this is how other people will see you (up to ${state.limits.nick} characters).`;
    dom.nickSubmit.textContent = "Join the chat";
    dom.nickCancel.textContent = "Skip";
  } else {
    dom.nickTitle.textContent = "Change your nickname";
    dom.nickHelp.textContent = `Everyone online will see the new name (up to ${state.limits.nick} characters).`;
    dom.nickSubmit.textContent = "Save";
    dom.nickCancel.textContent = "Cancel";
  }
  dom.nickInput.value = value ?? (mode === "change" && state.user ? state.user.nick : "");
  showNickError(error);
  dom.nickSubmit.disabled = false;
  if (!dom.nickDialog.open) {
    if (typeof dom.nickDialog.showModal === "function") dom.nickDialog.showModal();
    else dom.nickDialog.setAttribute("open", "");
  }
  dom.nickInput.focus();
  dom.nickInput.select();
}

function closeNickDialog() {
  if (!dom.nickDialog.open) return;
  if (typeof dom.nickDialog.close === "function") dom.nickDialog.close();
  else dom.nickDialog.removeAttribute("open");
}

function showNickError(text) {
  dom.nickError.textContent = text || "";
  dom.nickError.hidden = !text;
  if (text) dom.nickInput.setAttribute("aria-invalid", "true");
  else dom.nickInput.removeAttribute("aria-invalid");
}

function onNickSubmit(event) {
  event.preventDefault();
  const { nick, error } = validNick(dom.nickInput.value);
  if (error) {
    showNickError(error);
    dom.nickInput.focus();
    return;
  }
  showNickError(null);
  if (nickDialogMode === "first") {
    setWantedNick(nick);
    state.wantedFromDialog = true;
    dom.me.textContent = nick;
    if (navigator.onLine) {
      // The dialog stays until the server has taken the nick (the welcome)
      // or refused it (onNickRefused), so a taken one is asked again here.
      dom.nickSubmit.disabled = true;
      dom.nickSubmit.textContent = "Joining…";
    } else {
      closeNickDialog();
      dom.input.focus();
    }
    startConnecting();
    return;
  }
  if (state.user && nick === state.user.nick) {
    closeNickDialog();
    return;
  }
  if (canSend()) {
    sendFrame({ type: "nick", nick });
    dom.nickSubmit.disabled = true;
    clearTimeout(state.nickRequest && state.nickRequest.timer);
    state.nickRequest = {
      nick,
      timer: setTimeout(() => nickRequestDone("No answer from the server; try again."), 10_000),
    };
  } else {
    setWantedNick(nick);
    state.wantedFromDialog = true;
    closeNickDialog();
    toast(`You will be renamed to ${nick} when the connection is back.`);
  }
}

export function nickRequestDone(error) {
  if (!state.nickRequest) return;
  clearTimeout(state.nickRequest.timer);
  state.nickRequest = null;
  dom.nickSubmit.disabled = false;
  if (error) {
    if (!dom.nickDialog.open) openNickDialog("change");
    showNickError(error);
    dom.nickInput.focus();
  } else {
    closeNickDialog();
    dom.input.focus();
  }
}

function nickErrorText(frame, nick) {
  if (frame.code === "nick_taken") {
    return nick ? `“${nick}” is already taken by someone online. Try another one.`
      : "That nickname is already taken by someone online.";
  }
  return frame.message ? `That nickname cannot be used: ${frame.message}.` : "That nickname cannot be used.";
}

/** The first-visit nick was refused before the welcome: nobody has seen
 *  us yet, so ask for another one (the connection waits for it). */
export function onNickRefused(frame) {
  state.holdForNick = true;
  const asked = state.wantedNick;
  dom.me.textContent = "…";
  openNickDialog("first", { error: nickErrorText(frame, asked), value: asked || "" });
}

/** Refused for want of a login (signin.js): a first-visit dialog waiting
 *  for the server closes, as no nickname lets this visitor in. */
export function closeFirstVisitDialog() {
  if (nickDialogMode === "first") closeNickDialog();
}

/** Welcomed: a first-visit dialog waiting for the server closes. */
export function nickAccepted() {
  if (nickDialogMode !== "first" || !dom.nickDialog.open) return;
  closeNickDialog();
  dom.input.focus();
}

export function onNickError(frame) {
  if (state.nickRequest) {
    const nick = state.nickRequest.nick;
    nickRequestDone(nickErrorText(frame, nick));
    return;
  }
  // The nick asked in hello could not be used; the welcome carried the one in force.
  const asked = state.wantedNick;
  const fromDialog = state.wantedFromDialog;
  setWantedNick(null);
  state.wantedFromDialog = false;
  const current = state.user ? state.user.nick : "a guest name";
  addNotice("all", asked ? `The nickname “${asked}” could not be used; you are ${current}.`
    : `Your nickname could not be used; you are ${current}.`);
  if (fromDialog) openNickDialog("change", { error: nickErrorText(frame, asked), value: asked || "" });
  else toast(nickErrorText(frame, asked));
}

/** Dialog buttons; start is connection.js's startConnecting (see above). */
export function wireNickDialog(start) {
  startConnecting = start;
  dom.nickButton.addEventListener("click", () => openNickDialog(state.started ? "change" : "first"));
  dom.nickForm.addEventListener("submit", onNickSubmit);
  dom.nickCancel.addEventListener("click", () => {
    if (nickDialogMode === "first") {
      setWantedNick(null);
      closeNickDialog();
      startConnecting();
      dom.input.focus();
      return;
    }
    if (state.nickRequest) { clearTimeout(state.nickRequest.timer); state.nickRequest = null; }
    closeNickDialog();
    dom.nickButton.focus();
  });
  dom.nickDialog.addEventListener("cancel", (event) => {
    // Escape: on the first visit it means "skip", otherwise "cancel".
    event.preventDefault();
    dom.nickCancel.click();
  });
  dom.nickInput.addEventListener("input", () => showNickError(null));
}
