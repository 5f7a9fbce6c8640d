// Frames about rooms from the server: membership changes (`member`), the
// directory (`rooms`), a room's members (`members`), and errors that echo
// the `ref` of a request made from the rooms' dialogs.

import { isMe, state } from "./state.js";
import { dom } from "./dom.js";
import { announce, toast } from "./status.js";
import { roomKey } from "./conversations.js";
import { addRoom, dropRoom } from "./rooms.js";
import { addNotice } from "./messages.js";
import { refreshRoomBar, setSidebar, switchConv } from "./navigation.js";
import {
  closeDialog, directoryStatus, inviteNote, membersDialogRoom, renderDirectory, renderMembers,
  request, showRoomError, takePending,
} from "./roomdialogs.js";
import { decorateMembers, kickDone, moderationRefused } from "./moderation.js";

function nickOfUser(user) {
  return user && typeof user.nick === "string" ? user.nick : "someone";
}

/** Ask for a room's members (for @ suggestions), unless known already. */
export function wantMembers(roomId) {
  if (!roomId || roomId === "general" || state.members.has(roomId) || !state.welcomed) return;
  request({ type: "members", room: roomId }, "members");
}

function aboutMe(event, room, by, ask) {
  const key = roomKey(room.id);
  if (event === "join" || event === "invite") {
    const wasIn = state.rooms.has(room.id);
    addRoom(room, ask && ask.kind === "create" ? "owner" : undefined);
    if (ask && (ask.kind === "create" || ask.kind === "join")) {
      closeDialog(ask.kind === "create" ? dom.roomDialog : dom.directoryDialog, { toInput: true });
      setSidebar(false); // on a phone, the drawer gives way to the room
      switchConv(key, { focus: true });
      announce(ask.kind === "create" ? `Room ${room.name} created` : `You joined ${room.name}`);
    } else if (!wasIn && event === "invite") {
      addNotice(key, `${nickOfUser(by)} invited you`);
      toast(`${nickOfUser(by)} invited you to ${room.name}`);
    }
    refreshRoomBar();
    return;
  }
  // leave or kick: the room's frames stop here; its view goes.
  if (state.active === key) switchConv("all");
  dropRoom(room.id);
  if (membersDialogRoom() === room.id) closeDialog(dom.membersDialog);
  if (event === "kick") toast(`${nickOfUser(by)} removed you from ${room.name}`);
  else announce(`You left ${room.name}`);
}

const OTHERS = {
  join: (user) => `${nickOfUser(user)} joined`,
  leave: (user) => `${nickOfUser(user)} left`,
  invite: (user, by) => `${nickOfUser(by)} invited ${nickOfUser(user)}`,
  kick: (user, by) => `${nickOfUser(by)} removed ${nickOfUser(user)}`,
};

/** A `member` frame: someone joined, left, was invited or removed. */
export function onMember(frame) {
  const room = frame.room;
  const event = frame.event;
  if (!room || typeof room.id !== "string" || !OTHERS[event]) return;
  const user = frame.user || {};
  const by = frame.by || {};
  const ask = takePending(frame.ref);
  for (const u of [user, by]) {
    if (typeof u.id === "string" && typeof u.nick === "string" && !isMe(u.id)) state.known.set(u.id, u.nick);
  }
  if (isMe(user.id)) {
    aboutMe(event, room, by, ask);
    return;
  }
  if (!state.rooms.has(room.id)) return;
  addRoom(room);
  refreshRoomBar();
  addNotice(roomKey(room.id), OTHERS[event](user, by));
  state.members.delete(room.id);
  if (ask && ask.kind === "invite") inviteNote(`${nickOfUser(user)} is now a member.`);
  if (ask && ask.kind === "kick") kickDone(user);
  if (membersDialogRoom() === room.id || state.active === roomKey(room.id)) {
    request({ type: "members", room: room.id }, "members");
  }
}

/** The `rooms` answer: the directory. */
export function onRooms(frame) {
  takePending(frame.ref);
  const rooms = Array.isArray(frame.rooms) ? frame.rooms : [];
  for (const room of rooms) {
    if (room && state.rooms.has(room.id)) addRoom(room);
  }
  if (dom.directoryDialog.open) renderDirectory(rooms);
}

/** The `members` answer: kept for @ suggestions, shown in the dialog. */
export function onMembers(frame) {
  takePending(frame.ref);
  if (typeof frame.room !== "string" || !Array.isArray(frame.members)) return;
  const members = frame.members
    .filter((m) => m && typeof m.id === "string" && typeof m.nick === "string")
    .map((m) => ({ id: m.id, nick: m.nick, role: typeof m.role === "string" ? m.role : "member", online: !!m.online }));
  state.members.set(frame.room, members);
  for (const m of members) {
    if (isMe(m.id)) {
      const room = state.rooms.get(frame.room);
      if (room && room.role !== m.role) addRoom(room, m.role);
    } else {
      state.known.set(m.id, m.nick);
    }
  }
  renderMembers(frame.room, members);
  decorateMembers(frame.room, members);
}

const ERRORS = {
  room_taken: "A room with that name, or one that looks like it, exists already.",
  bad_room_name: "That name cannot be used for a room.",
  unknown_room: "That room does not exist any more, or is private.",
  not_member: "You are not in that room.",
  forbidden: "You are not allowed to do that in this room.",
  unknown_user: "The server does not know that person.",
  unknown_message: "That message is not there any more.",
  rate_limited: "Too many requests: wait a moment and try again.",
};

/** An `error` echoing the ref of a rooms request; true if it was one. */
export function onRefError(frame) {
  const ask = takePending(frame.ref);
  if (!ask) return false;
  let text = ERRORS[frame.code] || (frame.message ? `The server refused: ${frame.message}` : "The server refused that.");
  if (moderationRefused(ask, text)) return true;
  const wait = Number(frame.retry_after);
  if (frame.code === "rate_limited" && wait > 0) {
    // New rooms and invitations share a small budget per person.
    text = `Too many new rooms and invitations: try again in ${wait < 90 ? `${Math.ceil(wait)} seconds` : `${Math.ceil(wait / 60)} minutes`}.`;
  }
  if (ask.kind === "create") {
    const detail = frame.code === "bad_room_name" && frame.message ? `${ERRORS.bad_room_name} (${frame.message})` : text;
    showRoomError(detail);
  } else if (ask.kind === "join" || ask.kind === "rooms") {
    directoryStatus(text);
    for (const button of dom.directoryList.querySelectorAll("button[data-join]")) button.disabled = false;
  } else if (ask.kind === "invite") {
    inviteNote(`Not invited: ${text}`);
  } else if (ask.kind === "members") {
    if (membersDialogRoom() === ask.room) dom.membersStatus.textContent = text;
  } else {
    toast(text);
  }
  return true;
}
