// The rooms' dialogs: creating a room, the directory of public rooms to
// join, a room's members (with inviting someone) and leaving. Requests carry
// a `ref`; roomframes.js takes the answers and errors that echo it.

import { el } from "./util.js";
import { isMe, state } from "./state.js";
import { dom } from "./dom.js";
import { toast } from "./status.js";
import { canSend, sendFrame } from "./socket.js";

let refCounter = 0;
/** ref -> {kind, room, user, target, nick}: kind is "create", "join",
 *  "leave", "invite", "members" or "rooms"; or (moderation) "delete",
 *  "role", "kick", "mute" or "ban". */
export const pending = new Map();

/** Send a rooms or moderation frame with a fresh `ref`; false (and a toast)
 *  when offline. `extra` is kept with it for the answer (a nick to name). */
export function request(frame, what, extra = {}) {
  if (!canSend()) {
    toast("Not connected: try again once the connection is back.");
    return false;
  }
  refCounter += 1;
  const ref = `p${refCounter}`;
  if (!sendFrame({ ...frame, ref })) return false;
  pending.set(ref, { kind: what, room: frame.room || null, user: frame.user || null, target: frame.target || null, ...extra });
  return true;
}

export function takePending(ref) {
  if (typeof ref !== "string" || !pending.has(ref)) return null;
  const item = pending.get(ref);
  pending.delete(ref);
  return item;
}

function open(dialog, opener) {
  if (!dialog.open) dialog.showModal();
  dialog.dataset.opener = opener ? opener.id : "";
}

/** Closing a dialog gives focus back to the button that opened it. */
function closeBack(dialog) {
  dialog.addEventListener("close", () => {
    const opener = dialog.dataset.opener && document.getElementById(dialog.dataset.opener);
    if (opener && opener.offsetParent !== null && !opener.closest("[inert]")) opener.focus();
    else dom.input.focus();
  });
}

// ---------------------------------------------------------------- create

export function showRoomError(text) {
  dom.roomError.textContent = text || "";
  dom.roomError.hidden = !text;
  if (text) dom.roomName.setAttribute("aria-invalid", "true");
  else dom.roomName.removeAttribute("aria-invalid");
  dom.roomSubmit.disabled = false;
  if (text) dom.roomName.focus();
}

function onCreateSubmit(event) {
  event.preventDefault();
  const name = dom.roomName.value.trim();
  if (!name) {
    showRoomError("Please give the room a name.");
    return;
  }
  const kind = dom.roomForm.elements.kind.value === "private" ? "private" : "public";
  const topic = dom.roomTopicInput.value.trim();
  showRoomError(null);
  if (request({ type: "room_create", name, kind, topic }, "create")) dom.roomSubmit.disabled = true;
}

/** Close a dialog; `toInput` sends focus to the message box rather than
 *  back to the button that opened it (a room was just opened). */
export function closeDialog(dialog, { toInput = false } = {}) {
  if (toInput) dialog.dataset.opener = "";
  if (dialog.open) dialog.close();
}

// ---------------------------------------------------------------- directory

/** The `rooms` answer: public rooms this user is not in, each with a Join button. */
export function renderDirectory(rooms) {
  const items = [];
  for (const room of rooms) {
    if (!room || typeof room.id !== "string" || room.kind !== "public" || state.rooms.has(room.id)) continue;
    const li = el("li", "dialog-item");
    const text = el("div", "dialog-item-text");
    const name = el("span", "dialog-item-name", `# ${room.name}`);
    name.dir = "auto";
    const count = Number.isSafeInteger(room.members) ? room.members : 0;
    const meta = el("span", "muted dialog-item-meta", count === 1 ? "1 member" : `${count} members`);
    text.append(name, meta);
    if (room.topic) {
      const topic = el("span", "dialog-item-topic", room.topic);
      topic.dir = "auto";
      text.append(topic);
    }
    // Named by its content: "Join" shown, "Join <room>" spoken.
    const join = el("button", "primary-button small-button", "Join");
    join.type = "button";
    join.dataset.join = room.id;
    const hidden = el("span", "visually-hidden", ` ${room.name}`);
    join.append(hidden);
    li.append(text, join);
    items.push(li);
  }
  dom.directoryList.replaceChildren(...items);
  dom.directoryStatus.textContent = items.length ? `${items.length} room${items.length === 1 ? "" : "s"} to join`
    : "No other public rooms yet. Create one!";
}

export function directoryStatus(text) {
  dom.directoryStatus.textContent = text;
}

// ---------------------------------------------------------------- members

let membersRoom = null; // the room whose members the dialog shows

export function membersDialogRoom() {
  return dom.membersDialog.open ? membersRoom : null;
}

export function openMembers(roomId) {
  const room = state.rooms.get(roomId);
  if (!room) return;
  membersRoom = roomId;
  dom.membersTitle.textContent = `Members of ${room.name}`;
  dom.membersStatus.textContent = "Loading…";
  dom.membersList.replaceChildren();
  dom.inviteNote.hidden = true;
  membersNote(null);
  renderInvite([]);
  open(dom.membersDialog, dom.roomMembers);
  request({ type: "members", room: roomId }, "members");
}

const ROLE_NAMES = { owner: "owner", moderator: "moderator", admin: "admin" };

/** The `members` answer, in the dialog (when it shows that room). */
export function renderMembers(roomId, members) {
  if (membersDialogRoom() !== roomId) return;
  const items = members.map((m) => {
    const li = el("li", "dialog-item member-item");
    li.dataset.userId = m.id;
    const nick = el("span", "dialog-item-name", m.nick);
    nick.dir = "auto";
    const bits = [];
    if (isMe(m.id)) bits.push("you");
    if (ROLE_NAMES[m.role]) bits.push(ROLE_NAMES[m.role]);
    bits.push(m.online ? "online" : "offline");
    li.classList.toggle("is-online", !!m.online);
    li.append(nick, el("span", "muted dialog-item-meta", bits.join(", ")));
    if (isMe(m.id)) {
      // What an operator names with `quartchat admin grant <id>`.
      const id = el("span", "member-id muted", "Your user id: ");
      id.append(el("code", null, m.id));
      li.append(id);
    }
    return li;
  });
  dom.membersList.replaceChildren(...items);
  dom.membersStatus.textContent = members.length === 1 ? "1 member" : `${members.length} members`;
  renderInvite(members);
}

/** Who can be invited: people this page knows (online, or seen writing) who
 *  are not members yet. A private room takes invitations from its owner and
 *  moderators only. */
function renderInvite(members) {
  const room = state.rooms.get(membersRoom);
  const inside = new Set(members.map((m) => m.id));
  const canInvite = !!room && (room.kind === "public" || ["owner", "moderator", "admin"].includes(room.role));
  dom.inviteForm.hidden = !canInvite;
  if (!canInvite) {
    dom.inviteNote.hidden = false;
    dom.inviteNote.textContent = "Only the owner or a moderator can invite people to a private room.";
    dom.inviteForm.before(dom.inviteNote);
    return;
  }
  dom.inviteForm.append(dom.inviteNote);
  const people = new Map(state.known);
  for (const [id, nick] of state.online) people.set(id, nick);
  const options = [...people].filter(([id]) => !isMe(id) && !inside.has(id))
    .sort((a, b) => a[1].localeCompare(b[1], undefined, { sensitivity: "base" }))
    .map(([id, nick]) => {
      const option = el("option", null, nick);
      option.value = id;
      return option;
    });
  if (!options.length) {
    const none = el("option", null, members.length ? "Nobody else to invite yet" : "…");
    none.value = "";
    options.push(none);
  }
  dom.inviteUser.replaceChildren(...options);
  dom.inviteUser.disabled = !options[0].value;
  dom.inviteSubmit.disabled = !options[0].value;
}

/** What became of a moderation request made from the members dialog. */
export function membersNote(text, { error = false } = {}) {
  dom.membersNote.hidden = !text;
  dom.membersNote.textContent = text || "";
  dom.membersNote.classList.toggle("is-error", !!text && error);
}

export function inviteNote(text) {
  dom.inviteNote.hidden = !text;
  dom.inviteNote.textContent = text || "";
}

function onInviteSubmit(event) {
  event.preventDefault();
  const user = dom.inviteUser.value;
  if (!user || !membersRoom) return;
  if (request({ type: "room_invite", room: membersRoom, user }, "invite")) inviteNote("Inviting…");
}

// ---------------------------------------------------------------- leave

let leaving = null;

function openLeave() {
  const conv = state.convs.get(state.active);
  if (!conv || !conv.room || conv.key === "all") return;
  leaving = conv.room.id;
  dom.leaveTitle.textContent = `Leave ${conv.room.name}?`;
  dom.leaveHelp.textContent = conv.room.kind === "private"
    ? "It is private: you can only come back if a member invites you."
    : "You can join it again from Browse rooms.";
  open(dom.leaveDialog, dom.roomLeave);
}

// ---------------------------------------------------------------- wiring

export function wireRoomDialogs() {
  for (const dialog of [dom.roomDialog, dom.directoryDialog, dom.membersDialog, dom.leaveDialog]) closeBack(dialog);

  dom.roomNew.addEventListener("click", () => {
    dom.roomForm.reset();
    showRoomError(null);
    open(dom.roomDialog, dom.roomNew);
    dom.roomName.focus();
  });
  dom.roomForm.addEventListener("submit", onCreateSubmit);
  dom.roomCancel.addEventListener("click", () => closeDialog(dom.roomDialog));
  dom.roomName.addEventListener("input", () => showRoomError(null));

  dom.roomBrowse.addEventListener("click", () => {
    dom.directoryList.replaceChildren();
    directoryStatus("Loading…");
    open(dom.directoryDialog, dom.roomBrowse);
    request({ type: "rooms" }, "rooms");
  });
  dom.directoryList.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-join]");
    if (!button || button.disabled) return;
    if (request({ type: "room_join", room: button.dataset.join }, "join")) {
      button.disabled = true;
      directoryStatus("Joining…");
    }
  });
  dom.directoryClose.addEventListener("click", () => closeDialog(dom.directoryDialog));

  dom.roomMembers.addEventListener("click", () => {
    const conv = state.convs.get(state.active);
    if (conv && conv.room) openMembers(conv.room.id);
  });
  dom.inviteForm.addEventListener("submit", onInviteSubmit);
  dom.membersClose.addEventListener("click", () => closeDialog(dom.membersDialog));

  dom.roomLeave.addEventListener("click", openLeave);
  dom.leaveCancel.addEventListener("click", () => closeDialog(dom.leaveDialog));
  dom.leaveForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (leaving && request({ type: "room_leave", room: leaving }, "leave")) closeDialog(dom.leaveDialog);
  });
}
