// The message composer: auto-growing input, Enter to send, length check.

import { MAX_TEXT } from "./constants.js";
import { codePoints } from "./util.js";
import { state } from "./state.js";
import { dom, scrollToBottom } from "./dom.js";
import { toast } from "./status.js";
import { onInputActivity, stopTyping } from "./typing.js";
import { queueMessage } from "./outbox.js";

function autoGrow() {
  const input = dom.input;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function onComposerSubmit(event) {
  event.preventDefault();
  const text = dom.input.value;
  if (!text.trim()) {
    dom.input.focus();
    return;
  }
  if (codePoints(text) > MAX_TEXT) {
    toast(`Messages can be at most ${MAX_TEXT} characters (this one has ${codePoints(text)}).`);
    return;
  }
  const convKey = state.active;
  const conv = state.convs.get(convKey);
  stopTyping();
  queueMessage(text, convKey === "all" ? null : convKey, convKey === "all" ? null : conv.nick);
  dom.input.value = "";
  autoGrow();
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
    autoGrow();
    onInputActivity();
  });
  dom.input.addEventListener("blur", () => {
    if (dom.input.value.trim() === "") stopTyping();
  });
}
