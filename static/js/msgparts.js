// What a stored message shows besides its first text: its edit and delete
// buttons, its text as it is now (an edit of ours still on its way shows at
// once), "edited" with the edit's time, and "message deleted" in place of a
// deleted text. The text is always put in as text nodes (richtext.js).

import { el, fullDate, icon } from "./util.js";
import { state } from "./state.js";
import { renderText } from "./richtext.js";

const PENCIL = "M3 17.2V21h3.8L17.8 9.9l-3.8-3.8L3 17.2zM20.7 7a1 1 0 0 0 0-1.4l-2.3-2.3a1 1 0 0 0-1.4 0l-1.8 1.8 3.8 3.8L20.7 7z";
const BIN = "M9 3h6l1 2h4v2H4V5h4l1-2zM6 8h12l-1 12a2 2 0 0 1-2 2H9a2 2 0 0 1-2-2L6 8zm4 3v8h1.5v-8H10zm3.5 0v8H15v-8h-1.5z";

/** The element of a stored message on screen, or null. */
export function messageNode(id) {
  const m = state.messages.get(id);
  const conv = m && state.convs.get(m.key);
  if (!conv) return null;
  return conv.pane.querySelector(`.msg[data-id="${id}"]`);
}

function actionButton(action, label, path) {
  const button = el("button", `msg-action msg-${action}`);
  button.type = "button";
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  button.title = label;
  const svg = icon(path);
  svg.setAttribute("aria-hidden", "true");
  button.append(svg);
  return button;
}

/** Edit and delete for one's own messages; delete on someone else's public
 *  message, which shows only where this reader may moderate (style.css:
 *  `.can-moderate` on the pane, see rooms.js). Private messages of others
 *  get none: only their author may delete them. */
export function addActions(node, { own, isPrivate, fromNick }) {
  if (node.querySelector(".msg-actions") || node.dataset.deleted) return;
  const bar = el("div", "msg-actions");
  if (own) {
    bar.append(actionButton("edit", "Edit message", PENCIL), actionButton("delete", "Delete message", BIN));
  } else if (!isPrivate) {
    const del = actionButton("delete", `Delete message from ${fromNick || "someone"}`, BIN);
    del.classList.add("mod-only");
    bar.append(del);
  }
  if (bar.childElementCount) node.append(bar);
}

/** The text shown in the bubble (links and code as richtext.js makes them). */
function setShownText(node, text) {
  const box = node.querySelector(".msg-text");
  if (box) box.replaceChildren(renderText(text));
}

/** "edited", with the time of the last edit in its tooltip. Beside the
 *  text rather than in the header, which a grouped message hides. */
export function showEdited(node, ts) {
  if (!Number.isFinite(ts) || node.dataset.deleted) return;
  node.dataset.editedTs = String(ts);
  let mark = node.querySelector(".msg-edited");
  if (!mark) {
    mark = el("span", "msg-edited", "edited");
    node.querySelector(".msg-text").after(mark);
  }
  mark.title = `Edited ${fullDate(ts)}`;
}

/** The message was deleted: its text gives way to "message deleted", and
 *  nothing can be done with it any more. */
export function showDeleted(node) {
  node.dataset.deleted = "true";
  node.classList.add("deleted");
  const box = node.querySelector(".msg-text");
  if (box) box.replaceChildren(el("span", "msg-deleted-note", "message deleted"));
  for (const gone of node.querySelectorAll(".msg-edited, .msg-actions, .msg-editor")) gone.remove();
  if (box) box.hidden = false;
  const foot = node.querySelector(".msg-status");
  if (foot) foot.replaceChildren();
  delete node.dataset.edit;
}

/** The newest edit of ours to message `id` still in the outbox, or null. */
export function pendingEditOf(id) {
  let found = null;
  for (const entry of state.outbox) if (entry.kind === "edit" && entry.target === id) found = entry;
  return found;
}

/** How far our newest edit of this message got: on its way, or refused
 *  (with Retry and Discard); nothing once the server has it. */
function renderEditState(node, entry) {
  const foot = node.querySelector(".msg-status");
  if (!entry) {
    if (node.dataset.edit) {
      delete node.dataset.edit;
      if (foot) foot.replaceChildren();
    }
    return;
  }
  node.dataset.edit = entry.state;
  if (!foot) return;
  foot.replaceChildren();
  if (entry.state === "pending") {
    foot.append(el("span", "status-note", "saving the edit…"));
    return;
  }
  foot.append(el("span", "status-note", entry.reason ? `Edit not saved: ${entry.reason}` : "Edit not saved"));
  const retry = el("button", "retry", "Retry");
  retry.type = "button";
  retry.dataset.action = "retry-edit";
  retry.dataset.offset = entry.offset;
  const discard = el("button", "discard", "Discard");
  discard.type = "button";
  discard.dataset.action = "discard-edit";
  discard.dataset.offset = entry.offset;
  discard.setAttribute("aria-label", "Discard this edit");
  foot.append(retry, discard);
}

/** Show message `id` as it is now: deleted; or the newest edit of ours on
 *  its way (with its state), else the text the server holds. */
export function refreshMessage(id, node = messageNode(id)) {
  const m = state.messages.get(id);
  if (!node || !m) return;
  if (m.deleted) {
    if (!node.dataset.deleted) showDeleted(node);
    return;
  }
  const pending = pendingEditOf(id);
  setShownText(node, pending ? pending.text : m.text);
  if (m.editedTs) showEdited(node, m.editedTs);
  renderEditState(node, pending);
}
