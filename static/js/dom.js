// References to the page's fixed elements and scroll helpers for the message list.

import { NEAR_BOTTOM_PX } from "./constants.js";

const $ = (sel) => document.querySelector(sel);
export const dom = {
  status: $("#status"),
  statusText: $("#status .status-text"),
  me: $("#me"),
  nickButton: $("#nick-button"),
  sidebar: $("#sidebar"),
  sidebarToggle: $("#sidebar-toggle"),
  sidebarClose: $("#sidebar-close"),
  backdrop: $("#sidebar-backdrop"),
  online: $("#online"),
  onlineCount: $("#online-count"),
  onlineBadge: $("#online-count-badge"),
  conversations: $("#conversations"),
  messages: $("#messages"),
  jump: $("#jump"),
  typing: $("#typing"),
  composer: $("#composer"),
  input: $("#input"),
  send: $("#send"),
  toast: $("#toast"),
  announcer: $("#announcer"),
  nickDialog: $("#nick-dialog"),
  nickForm: $("#nick-form"),
  nickInput: $("#nick-input"),
  nickError: $("#nick-error"),
  nickTitle: $("#nick-title"),
  nickHelp: $("#nick-help"),
  nickCancel: $("#nick-cancel"),
  nickSubmit: $("#nick-submit"),
};

export function isNearBottom() {
  const m = dom.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < NEAR_BOTTOM_PX;
}

export function scrollToBottom() {
  dom.messages.scrollTop = dom.messages.scrollHeight;
  dom.jump.hidden = true;
}

/** Run fn (which inserts into the active pane) and keep what the reader
 *  was looking at in place; stay pinned to the bottom if they were there. */
export function keepScroll(fn) {
  const m = dom.messages;
  if (isNearBottom()) {
    fn();
    scrollToBottom();
    return;
  }
  const top = m.scrollTop;
  let anchor = null;
  let anchorOffset = 0;
  for (const child of m.firstElementChild ? m.firstElementChild.children : []) {
    if (child.classList.contains("history-top")) continue; // it always stays on top
    if (child.offsetTop + child.offsetHeight > top) {
      anchor = child;
      anchorOffset = child.offsetTop - top;
      break;
    }
  }
  fn();
  if (anchor && anchor.isConnected) m.scrollTop = anchor.offsetTop - anchorOffset;
}
