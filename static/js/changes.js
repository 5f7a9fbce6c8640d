// Entries of the log as they arrive, live or in a replay: messages (their
// bookkeeping after a welcome), and edits and deletes (protocol 1.1), which
// change a message where it is shown. An edit or delete of a message not
// loaded here is left alone (history shows it as it is now), but its id is
// an entry's like a message's: it moves the cursor, so a resume does not
// ask for it again.

import { state } from "./state.js";
import { announce } from "./status.js";
import { renderBadge } from "./conversations.js";
import { updateCursor } from "./messages.js";
import { discardEntry } from "./outbox.js";
import { historyNext } from "./history.js";
import { messageNode, refreshMessage, showDeleted } from "./msgparts.js";
import { pending, takePending } from "./roomdialogs.js";
import { dropEditor } from "./msgactions.js";

/** The first entry after a welcome that did not recover: everything from
 *  it on follows, and what lies between the old cursor and it is a gap. */
export function firstAfterWelcome(id) {
  if (!state.awaitFirstAfterWelcome) return;
  state.awaitFirstAfterWelcome = false;
  if (state.floorAll === null || state.messages.size === 0) {
    state.floorAll = id;
  } else if (state.gapBelow !== null && state.gapBelow !== undefined && id > state.gapBelow + 1) {
    state.gap = { below: state.gapBelow, above: id, pages: 0 };
    setTimeout(historyNext, 0);
  }
}

function entryId(frame) {
  const id = Number(frame.id);
  const target = Number(frame.target);
  if (!Number.isSafeInteger(id) || id <= 0 || !Number.isSafeInteger(target) || target <= 0) return null;
  firstAfterWelcome(id);
  updateCursor(id);
  return { id, target };
}

/** `edited`: the message's text is now the frame's, edited at its `ts`.
 *  (An edit replayed after its message was deleted has no text: the
 *  `deleted` that follows says the rest.) */
export function onEdited(frame) {
  const ids = entryId(frame);
  if (!ids) return;
  const m = state.messages.get(ids.target);
  if (!m || m.deleted || typeof frame.text !== "string" || !frame.text) return;
  m.text = frame.text;
  m.editedTs = Number.isSafeInteger(frame.ts) ? frame.ts : Date.now();
  refreshMessage(ids.target);
}

/** `deleted`: the message says "message deleted" from now on; our edits of
 *  it still on their way are moot. */
export function onDeleted(frame) {
  const ids = entryId(frame);
  if (!ids) return;
  const { id, target } = ids;
  takePending(frame.ref);
  for (const [ref, ask] of pending) if (ask.kind === "delete" && ask.target === target) pending.delete(ref);
  const m = state.messages.get(target);
  if (!m || m.deleted) return;
  for (const entry of state.outbox.filter((e) => e.kind === "edit" && e.target === target)) {
    discardEntry(entry.offset, { focus: false });
  }
  m.deleted = true;
  m.text = "";
  dropEditor(target);
  const node = messageNode(target);
  if (node) {
    const hadFocus = node.contains(document.activeElement);
    showDeleted(node);
    if (hadFocus) node.focus();
  }
  const by = frame.by && typeof frame.by.nick === "string" ? frame.by.nick : null;
  const byOther = by && frame.by.id !== (frame.from && frame.from.id);
  if (node && byOther) node.querySelector(".msg-deleted-note").title = `Deleted by ${by}`;
  if (m.key === state.active && node && Date.now() - state.welcomedAt > 1500) announce(byOther ? `${by} deleted a message` : "A message was deleted");
  // A message counted unread, gone: it is not waiting to be read any more.
  const conv = state.convs.get(m.key);
  if (conv && m.other && id > state.countedUpTo && target > conv.readId && conv.key !== state.active && conv.unread > 0) {
    conv.unread -= 1;
    if (m.mention && conv.mentions > 0) conv.mentions -= 1;
    renderBadge(conv);
  }
  refreshMessage(target, node);
}
