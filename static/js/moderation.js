// Moderating a room from its members dialog: for its owner and moderators,
// make someone a moderator or a member again (the owner), remove them, mute
// them for 10 minutes, an hour or a day; for admins, ban them from the chat.
// Each request carries a `ref`; the answer (a `role`, a `member` kick, a
// `mute`, a `ban`) or the error that echoes it says what became of it, below
// the list. And the notices that reach this user: a role given, a mute.
// The server checks every right again; what shows here is what may succeed.

import { el } from "./util.js";
import { isMe, state } from "./state.js";
import { dom } from "./dom.js";
import { toast } from "./status.js";
import { roomKey } from "./conversations.js";
import { addRoom } from "./rooms.js";
import { addNotice } from "./messages.js";
import { setMute, untilText } from "./mutes.js";
import { confirmAction } from "./confirm.js";
import { membersDialogRoom, membersNote, renderMembers, request, takePending } from "./roomdialogs.js";

const MUTES = [
  { seconds: 600, label: "Mute 10 min" },
  { seconds: 3600, label: "Mute 1 h" },
  { seconds: 86_400, label: "Mute 24 h" },
];
const BANS = [
  { value: "3600", label: "For 1 hour" },
  { value: "86400", label: "For 24 hours" },
  { value: "604800", label: "For 7 days" },
  { value: "forever", label: "For good" },
];
const RANK = { member: 0, moderator: 1, owner: 2 };

// Whose actions are open, so that a redrawn list (a new `members` answer, a
// role changed) keeps them open.
let openFor = null; // {room, user}

function nickOf(user) {
  return user && typeof user.nick === "string" ? user.nick : "someone";
}

/** What this reader may do to `member` in `room` (null: nothing). An admin
 *  may do what an owner may, everywhere; a moderator acts on members only;
 *  nobody kicks, mutes or changes the role of a room's owner. */
function powersOver(room, member) {
  if (!room || isMe(member.id)) return null;
  const mine = state.admin ? 3 : RANK[room.role] || 0;
  const theirs = RANK[member.role] || 0;
  const over = mine >= 1 && mine > theirs && member.role !== "owner";
  const powers = {
    role: mine >= 2 && member.role !== "owner",
    kick: over && room.id !== "general",
    mute: over,
    ban: state.admin,
  };
  return Object.values(powers).some(Boolean) ? powers : null;
}

function actionButton(text, data) {
  const button = el("button", "ghost-button small-button", text);
  button.type = "button";
  Object.assign(button.dataset, data);
  return button;
}

/** A "Manage" disclosure on each member this reader may act on. */
export function decorateMembers(roomId, members) {
  if (membersDialogRoom() !== roomId) return;
  const room = state.rooms.get(roomId);
  members.forEach((member, i) => {
    const powers = powersOver(room, member);
    const li = [...dom.membersList.children].find((item) => item.dataset.userId === member.id);
    if (!powers || !li) return;
    const panelId = `member-actions-${i}`;
    const toggle = el("button", "ghost-button small-button member-manage", "Manage");
    toggle.type = "button";
    toggle.dataset.manage = panelId;
    toggle.dataset.user = member.id;
    toggle.setAttribute("aria-controls", panelId);
    toggle.append(el("span", "visually-hidden", ` ${member.nick}`));
    const panel = el("div", "member-actions");
    panel.id = panelId;
    const open = !!openFor && openFor.room === roomId && openFor.user === member.id;
    toggle.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
    panel.setAttribute("role", "group");
    panel.setAttribute("aria-label", `Moderate ${member.nick}`);
    const data = { user: member.id, nick: member.nick };
    // A row per kind of action (role and removal, mutes, the ban), so that
    // a row's buttons wrap together rather than one left alone on a line.
    const place = el("div", "member-actions-row");
    if (powers.role) {
      place.append(member.role === "moderator"
        ? actionButton("Make member", { ...data, mod: "role", role: "member" })
        : actionButton("Make moderator", { ...data, mod: "role", role: "moderator" }));
    }
    if (powers.kick) place.append(actionButton("Remove from room", { ...data, mod: "kick" }));
    const mutes = el("div", "member-actions-row");
    if (powers.mute) {
      for (const { seconds, label } of MUTES) mutes.append(actionButton(label, { ...data, mod: "mute", seconds: String(seconds) }));
      mutes.append(actionButton("Unmute", { ...data, mod: "mute", seconds: "0" }));
    }
    const ban = el("div", "member-actions-row");
    if (powers.ban) ban.append(actionButton("Ban from chat…", { ...data, mod: "ban" }));
    panel.append(...[place, mutes, ban].filter((row) => row.childElementCount > 0));
    li.append(toggle, panel);
    // Focus was on something the redraw replaced: back to these actions.
    const lost = !document.activeElement || document.activeElement === document.body;
    if (open && lost && dom.membersDialog.open) toggle.focus();
  });
}

async function askBan(user, nick) {
  const answer = await confirmAction({
    title: `Ban ${nick}?`,
    help: "They are disconnected at once, everywhere, and cannot come back until the ban ends.",
    choices: BANS,
    choiceLabel: "How long",
    confirm: "Ban",
  });
  if (answer === null) return;
  const seconds = answer === "forever" ? null : Number(answer);
  if (request({ type: "ban", user, seconds }, "ban", { nick })) membersNote(`Banning ${nick}…`);
}

function onMembersClick(event) {
  const toggle = event.target.closest("button[data-manage]");
  if (toggle) {
    const panel = document.getElementById(toggle.dataset.manage);
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    if (panel) panel.hidden = !open;
    openFor = open ? { room: membersDialogRoom(), user: toggle.dataset.user } : null;
    return;
  }
  const button = event.target.closest("button[data-mod]");
  const room = membersDialogRoom();
  if (!button || !room) return;
  const { mod, user, nick } = button.dataset;
  if (mod === "role") {
    const role = button.dataset.role;
    if (request({ type: "role", room, user, role }, "role", { nick })) {
      membersNote(role === "moderator" ? `Making ${nick} a moderator…` : `Making ${nick} a member…`);
    }
  } else if (mod === "kick") {
    if (request({ type: "kick", room, user }, "kick", { nick })) membersNote(`Removing ${nick}…`);
  } else if (mod === "mute") {
    const seconds = Number(button.dataset.seconds);
    if (request({ type: "mute", room, user, seconds }, "mute", { nick })) {
      membersNote(seconds ? `Muting ${nick}…` : `Lifting ${nick}'s mute…`);
    }
  } else if (mod === "ban") {
    askBan(user, nick);
  }
}

export function wireModeration() {
  dom.membersList.addEventListener("click", onMembersClick);
  dom.membersDialog.addEventListener("close", () => {
    openFor = null;
  });
}

// ---------------------------------------------------------------- frames

function who(user) {
  return isMe(user && user.id) ? "You" : nickOf(user);
}

/** A `role` frame: someone's role in a room changed (ours, perhaps). */
export function onRole(frame) {
  const ask = takePending(frame.ref);
  const room = state.rooms.get(frame.room);
  const user = frame.user || {};
  const role = frame.role === "moderator" || frame.role === "owner" ? frame.role : "member";
  if (!room || typeof user.id !== "string") return;
  const what = role === "moderator" ? "a moderator" : role === "owner" ? "the owner" : "a member";
  if (isMe(user.id)) {
    addRoom(room, role);
    addNotice(roomKey(room.id), `${who(frame.by)} made you ${what}`);
  } else {
    state.known.set(user.id, nickOf(user));
    addNotice(roomKey(room.id), `${who(frame.by)} made ${nickOf(user)} ${what}`);
  }
  const members = state.members.get(room.id);
  const member = members && members.find((m) => m.id === user.id);
  if (member) member.role = role;
  if (ask) membersNote(`${nickOf(user)} is now ${what}.`);
  if (members && membersDialogRoom() === room.id) {
    renderMembers(room.id, members);
    decorateMembers(room.id, members);
  }
}

/** A `mute` frame: the answer to ours, or a mute on this user. */
export function onMute(frame) {
  const ask = takePending(frame.ref);
  const user = frame.user || {};
  const room = typeof frame.room === "string" ? frame.room : null;
  const until = frame.until === undefined ? null : frame.until;
  const lifted = until === 0;
  if (isMe(user.id)) {
    setMute(room, until);
    const where = room ? roomKey(room) : "all";
    addNotice(state.convs.has(where) ? where : "all", lifted
      ? `${who(frame.by)} lifted your mute${room ? "" : " (everywhere)"}`
      : `${who(frame.by)} muted you${room ? "" : " everywhere"} ${untilText(until)}`);
  }
  if (ask) {
    membersNote(lifted ? `${nickOf(user)} can write again.` : `${nickOf(user)} is muted ${room ? "here" : "everywhere"} ${untilText(until)}.`);
  }
}

/** A `ban` frame: the answer to ours. */
export function onBan(frame) {
  const ask = takePending(frame.ref);
  if (!ask) return;
  const user = frame.user || {};
  const until = frame.until === undefined ? null : frame.until;
  const text = until === 0 ? `${nickOf(user)} is no longer banned.` : `${nickOf(user)} is banned ${untilText(until)}.`;
  if (dom.membersDialog.open) membersNote(text);
  else toast(text);
}

/** A kick of ours took effect (its `member` event echoes our ref). */
export function kickDone(user) {
  if (dom.membersDialog.open) membersNote(`${nickOf(user)} was removed from the room.`);
}

/** An error echoing the ref of a moderation request; true if it was one. */
export function moderationRefused(ask, text) {
  if (ask.kind === "delete") {
    toast(`Not deleted: ${text}`);
    return true;
  }
  if (!["role", "kick", "mute", "ban"].includes(ask.kind)) return false;
  const line = `Not done: ${text}`;
  if (dom.membersDialog.open) membersNote(line, { error: true });
  else toast(line);
  return true;
}
