// The message composer: Enter to send, trimming as the server does, the
// length check, and the draft of each conversation.

import { isBlank, trimMessage } from "./util.js";
import { state } from "./state.js";
import { dom, scrollToBottom } from "./dom.js";
import { onInputActivity, stopTyping } from "./typing.js";
import { queueMessage } from "./outbox.js";
import { measureComposer, refreshComposer } from "./counter.js";
import { saveDraft } from "./drafts.js";
import { roomIdOf } from "./conversations.js";

function onComposerSubmit(event) {
  event.preventDefault();
  // Trimmed here exactly as the server trims, so the message shown at once
  // is the one everyone else will see.
  const text = trimMessage(dom.input.value);
  if (isBlank(text) || measureComposer().over) {
    dom.input.focus(); // the counter beside the composer says why
    return;
  }
  const convKey = state.active;
  const conv = state.convs.get(convKey);
  stopTyping();
  const room = roomIdOf(convKey); // general is a room too
  queueMessage(text, room ? null : convKey, room ? null : conv.nick, room);
  dom.input.value = "";
  saveDraft(convKey, "");
  refreshComposer();
  dom.input.focus();
  scrollToBottom();
}

/** Submit, Enter (not Shift+Enter or while composing), typing activity. */
export function wireComposer() {
  dom.composer.addEventListener("submit", onComposerSubmit);
  dom.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      dom.composer.requestSubmit ? dom.composer.requestSubmit() : onComposerSubmit(event);
    }
  });
  dom.input.addEventListener("input", () => {
    saveDraft(state.active, dom.input.value);
    refreshComposer();
    onInputActivity();
  });
  dom.input.addEventListener("blur", () => {
    if (dom.input.value.trim() === "") stopTyping();
  });
}
