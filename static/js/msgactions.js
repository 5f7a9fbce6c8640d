// Acting on a message: editing one's own in place (Enter saves, Escape
// cancels; Up in an empty message box edits one's last message), and
// deleting one's own, or as a room's owner or moderator or an admin anyone's
// public message, after a confirmation.

import { codePoints, el, isBlank, trimMessage } from "./util.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { announce } from "./status.js";
import { discardEntry, queueEdit, retryEntry } from "./outbox.js";
import { pendingEditOf, refreshMessage } from "./msgparts.js";
import { confirmAction } from "./confirm.js";
import { request } from "./roomdialogs.js";

let editing = null; // {id, node, editor, input, error}

function shownText(id) {
  const pending = pendingEditOf(id);
  const m = state.messages.get(id);
  return pending ? pending.text : (m ? m.text : "");
}

function fitHeight(input) {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function showEditError(text) {
  if (!editing) return;
  editing.error.textContent = text || "";
  editing.error.hidden = !text;
  if (text) editing.input.setAttribute("aria-invalid", "true");
  else editing.input.removeAttribute("aria-invalid");
}

/** Open the editor on one of our messages, in place of its text. */
export function startEdit(node) {
  const id = Number(node.dataset.id);
  const m = state.messages.get(id);
  if (!m || m.deleted || m.other) return;
  if (editing && editing.id === id && editing.node.isConnected) {
    editing.input.focus();
    return;
  }
  if (editing) closeEditor({ focus: false });
  const box = node.querySelector(".msg-text");
  if (!box) return;
  const editor = el("div", "msg-editor");
  const input = el("textarea", "msg-edit-input");
  input.id = `edit-input-${id}`;
  input.rows = 1;
  input.dir = "auto";
  input.value = shownText(id);
  input.setAttribute("enterkeyhint", "done");
  const label = el("label", "visually-hidden", "Edit your message");
  label.htmlFor = input.id;
  const error = el("p", "msg-edit-error");
  error.id = `edit-error-${id}`;
  error.hidden = true;
  error.setAttribute("role", "alert");
  const hint = el("p", "msg-edit-hint", "Enter to save · Escape to cancel");
  hint.id = `edit-hint-${id}`;
  input.setAttribute("aria-describedby", `${error.id} ${hint.id}`);
  const cancel = el("button", "ghost-button small-button", "Cancel");
  cancel.type = "button";
  const save = el("button", "primary-button small-button", "Save");
  save.type = "button";
  const buttons = el("div", "msg-edit-buttons");
  buttons.append(cancel, save);
  editor.append(label, input, error, hint, buttons);
  box.hidden = true;
  box.after(editor);
  node.classList.add("editing");
  editing = { id, node, editor, input, error };

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      saveEdit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // not the drawer's Escape
      closeEditor();
    }
  });
  input.addEventListener("input", () => {
    fitHeight(input);
    showEditError(null);
  });
  cancel.addEventListener("click", () => closeEditor());
  save.addEventListener("click", () => saveEdit());
  fitHeight(input);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** Close the editor, keeping what the message shows; focus goes back to
 *  the message's Edit button (or the message) unless `focus` is false. */
export function closeEditor({ focus = true } = {}) {
  if (!editing) return;
  const { id, node, editor } = editing;
  const hadFocus = node.contains(document.activeElement);
  editing = null;
  editor.remove();
  node.classList.remove("editing");
  const box = node.querySelector(".msg-text");
  if (box) box.hidden = false;
  refreshMessage(id, node);
  if (focus && hadFocus && node.isConnected) (node.querySelector(".msg-edit") || node).focus();
}

/** The message being edited was deleted: the editor goes without a trace. */
export function dropEditor(id) {
  if (editing && editing.id === id) closeEditor({ focus: false });
}

function saveEdit() {
  if (!editing) return;
  const { id, input } = editing;
  const m = state.messages.get(id);
  if (!m || m.deleted) {
    closeEditor();
    return;
  }
  // Trimmed as the server trims it, so what shows is what others will see.
  const text = trimMessage(input.value);
  if (isBlank(text)) {
    showEditError("A message cannot be empty: to take it back, delete it instead.");
    return;
  }
  const length = codePoints(text);
  if (length > state.limits.text) {
    showEditError(`Too long: ${length.toLocaleString()} characters, ${(length - state.limits.text).toLocaleString()} over the limit.`);
    return;
  }
  const changed = text !== shownText(id);
  closeEditor();
  if (changed) queueEdit(id, text);
}

/** Ask, then delete message `node` for everyone. */
export async function askDelete(node) {
  const id = Number(node.dataset.id);
  const m = state.messages.get(id);
  if (!m || m.deleted) return;
  const author = node.querySelector(".msg-from");
  const who = m.other && author ? author.textContent : null;
  const answer = await confirmAction({
    title: who ? `Delete ${who}'s message?` : "Delete your message?",
    help: "It is deleted for everyone and cannot be brought back.",
    quote: shownText(id),
    confirm: "Delete",
    fallback: node,
  });
  if (answer === null || !node.isConnected || node.dataset.deleted) return;
  if (request({ type: "delete", target: id }, "delete")) announce("Deleting the message…");
}

/** Up in an empty message box edits the last message of ours shown. */
function editLastOwn(event) {
  if (event.key !== "ArrowUp" || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
  if (dom.input.value !== "" || event.isComposing) return;
  const conv = state.convs.get(state.active);
  const mine = conv && [...conv.pane.querySelectorAll(".msg.own[data-id]:not([data-deleted])")].pop();
  if (!mine) return;
  event.preventDefault();
  startEdit(mine);
}

/** The buttons on messages: edit and delete, and an edit's Retry and Discard. */
export function wireMessageActions() {
  dom.messages.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const node = button && button.closest(".msg");
    if (!node) return;
    const action = button.dataset.action;
    if (action === "edit") startEdit(node);
    else if (action === "delete") askDelete(node);
    else if (action === "retry-edit") retryEntry(button.dataset.offset);
    else if (action === "discard-edit") discardEntry(button.dataset.offset);
  });
  dom.input.addEventListener("keydown", editLastOwn);
}
