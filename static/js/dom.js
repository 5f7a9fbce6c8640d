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
  composerCount: $("#composer-count"),
  composerNote: $("#composer-note"),
  banned: $("#banned"),
  bannedUntil: $("#banned-until"),
  signIn: $("#signin-needed"),
  onlineStale: $("#online-stale"),
  notifyButton: $("#notify-button"),
  notifyNote: $("#notify-note"),
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
  // rooms
  rooms: $("#rooms"),
  roomNew: $("#room-new"),
  roomBrowse: $("#room-browse"),
  roomBar: $("#room-bar"),
  roomTitle: $("#room-title"),
  roomTopic: $("#room-topic"),
  roomMembers: $("#room-members"),
  roomLeave: $("#room-leave"),
  mentionList: $("#mention-list"),
  roomDialog: $("#room-dialog"),
  roomForm: $("#room-form"),
  roomName: $("#room-name"),
  roomTopicInput: $("#room-topic-input"),
  roomError: $("#room-error"),
  roomCancel: $("#room-cancel"),
  roomSubmit: $("#room-submit"),
  directoryDialog: $("#directory-dialog"),
  directoryStatus: $("#directory-status"),
  directoryList: $("#directory-list"),
  directoryClose: $("#directory-close"),
  membersDialog: $("#members-dialog"),
  membersTitle: $("#members-title"),
  membersStatus: $("#members-status"),
  membersList: $("#members-list"),
  inviteForm: $("#invite-form"),
  inviteUser: $("#invite-user"),
  inviteSubmit: $("#invite-submit"),
  inviteNote: $("#invite-note"),
  membersClose: $("#members-close"),
  leaveDialog: $("#leave-dialog"),
  leaveForm: $("#leave-form"),
  leaveTitle: $("#leave-title"),
  leaveHelp: $("#leave-help"),
  leaveCancel: $("#leave-cancel"),
  membersNote: $("#members-note"),
  // moderation
  confirmDialog: $("#confirm-dialog"),
  confirmForm: $("#confirm-form"),
  confirmTitle: $("#confirm-title"),
  confirmHelp: $("#confirm-help"),
  confirmQuote: $("#confirm-quote"),
  confirmChoiceField: $("#confirm-choice-field"),
  confirmChoiceLabel: $("#confirm-choice-label"),
  confirmChoice: $("#confirm-choice"),
  confirmCancel: $("#confirm-cancel"),
  confirmOk: $("#confirm-ok"),
};

// Whether the reader is at the newest message. Kept from their last scroll,
// not measured when asked: a resize (a phone keyboard opening, a window made
// shorter) or a message wrapping moves the bottom away without anyone
// scrolling, and the reader who was there must stay there.
let atBottom = true;
let lastTop = 0;

function measureAtBottom() {
  const m = dom.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < NEAR_BOTTOM_PX;
}

export function isNearBottom() {
  return atBottom;
}

export function scrollToBottom() {
  dom.messages.scrollTop = dom.messages.scrollHeight;
  lastTop = dom.messages.scrollTop;
  atBottom = true;
  dom.jump.hidden = true;
}

/** Show a position away from the bottom (a conversation switched back to). */
export function scrollToFromBottom(fromBottom) {
  const m = dom.messages;
  m.scrollTop = m.scrollHeight - fromBottom;
  lastTop = m.scrollTop;
  atBottom = measureAtBottom();
}

const follow = new ResizeObserver(() => {
  if (atBottom) scrollToBottom();
});

/** Track the reader's scrolling, and keep a reader at the bottom there
 *  whenever the list or what it shows changes size. */
export function stickToBottom() {
  dom.messages.addEventListener("scroll", () => {
    // Only the reader moving up leaves the bottom: a scroll event measured
    // after a resize that moved the bottom away is not them.
    const top = dom.messages.scrollTop;
    atBottom = measureAtBottom() || (atBottom && top >= lastTop);
    lastTop = top;
  }, { passive: true });
  follow.observe(dom.messages);
}

/** Follow size changes of a conversation pane's content too. */
export function followPane(pane) {
  follow.observe(pane);
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
    // A message, not the marker on top (it stays there) nor a day divider
    // (one may move up to the first message of a prepended page).
    if (!child.classList.contains("msg")) continue;
    if (child.offsetTop + child.offsetHeight > top) {
      anchor = child;
      anchorOffset = child.offsetTop - top;
      break;
    }
  }
  fn();
  if (anchor && anchor.isConnected) {
    m.scrollTop = anchor.offsetTop - anchorOffset;
    lastTop = m.scrollTop;
    atBottom = measureAtBottom();
  }
}
