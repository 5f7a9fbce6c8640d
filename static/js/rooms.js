// Rooms (issue 21): the rooms this user is in, each a conversation view of
// its own, and the sidebar's room list with unread counts and mentions.
// General is a room too; its view keeps the key "all" (the "Everyone" tab).

import { storage } from "./storage.js";
import { el, icon } from "./util.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { makeConv, renderBadge, roomIdOf, roomKey, updateMarker } from "./conversations.js";

const GENERAL = { id: "general", name: "general", kind: "public", topic: "", role: "member" };

/** A small padlock, drawn for private rooms. */
function lockIcon() {
  return icon("M7 10V8a5 5 0 0 1 10 0v2h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h1zm2 0h6V8a3 3 0 0 0-6 0v2z");
}

/** Only what a room object from the server may hold, as plain strings. */
function cleanRoom(raw, role) {
  if (!raw || typeof raw.id !== "string" || !raw.id) return null;
  return {
    id: raw.id,
    name: typeof raw.name === "string" && raw.name ? raw.name : raw.id,
    kind: raw.kind === "private" ? "private" : "public",
    topic: typeof raw.topic === "string" ? raw.topic : "",
    role: typeof role === "string" ? role : "member",
  };
}

export function persistRooms() {
  storage.set("rooms", [...state.rooms.values()].filter((r) => r.id !== "general"));
}

function buildEntry(conv) {
  const li = el("li", "room-item");
  li.dataset.room = conv.room.id;
  const button = el("button", "room-button");
  button.type = "button";
  button.dataset.conv = conv.key;
  const icon = el("span", "room-icon");
  icon.setAttribute("aria-hidden", "true");
  const name = el("span", "room-name");
  name.dir = "auto";
  const kind = el("span", "visually-hidden");
  const mention = el("span", "mention-badge");
  const at = el("span", null, "@");
  at.setAttribute("aria-hidden", "true");
  mention.append(at, el("span", "visually-hidden"));
  const badge = el("span", "badge");
  badge.append(document.createTextNode("0"), el("span", "visually-hidden", " unread"));
  button.append(icon, name, kind, mention, badge);
  li.append(button);
  conv.entry = { li, button, icon, name, kind, mention, badge };
}

function renderEntry(conv) {
  const { room, entry } = conv;
  entry.name.textContent = room.name;
  entry.icon.replaceChildren(room.kind === "private" ? lockIcon() : document.createTextNode("#"));
  entry.kind.textContent = room.kind === "private" ? " (private)" : "";
  entry.button.title = room.topic || "";
  if (state.active === conv.key) entry.button.setAttribute("aria-current", "true");
  else entry.button.removeAttribute("aria-current");
  renderBadge(conv);
}

/** The room list in the sidebar: general first, then by name. */
export function renderRoomList() {
  const convs = [...state.rooms.keys()].map((id) => state.convs.get(roomKey(id))).filter(Boolean);
  convs.sort((a, b) => {
    if (a.key === "all") return -1;
    if (b.key === "all") return 1;
    return a.room.name.localeCompare(b.room.name, undefined, { sensitivity: "base" });
  });
  for (const conv of convs) renderEntry(conv);
  dom.rooms.replaceChildren(...convs.map((conv) => conv.entry.li));
}

/** Whether this reader may delete others' messages in a room: as its owner
 *  or a moderator, or as an admin (anywhere). */
export function canModerate(room) {
  return !!room && (state.admin || room.role === "owner" || room.role === "moderator");
}

/** Others' messages show a Delete button only in panes marked so (style.css). */
function renderPower(conv) {
  conv.pane.classList.toggle("can-moderate", canModerate(conv.room));
}

/** After the welcome said whether this user is an admin. */
export function renderPowers() {
  for (const conv of state.convs.values()) if (conv.room) renderPower(conv);
}

/** Make (or update) the view of a room this user is in. */
export function addRoom(raw, role) {
  const prev = raw && state.rooms.get(raw.id);
  const room = cleanRoom(raw, role ?? (prev ? prev.role : undefined));
  if (!room) return null;
  if (room.id === "general") Object.assign(room, { name: GENERAL.name, kind: "public" });
  state.rooms.set(room.id, room);
  const key = roomKey(room.id);
  const conv = state.convs.get(key) || makeConv(key);
  conv.room = room;
  renderPower(conv);
  if (!conv.entry) buildEntry(conv);
  updateMarker(conv);
  persistRooms();
  renderRoomList();
  return conv;
}

/** The view of a room a message, typing notice or outbox entry names: one
 *  not (yet) in the list gets a view anyway, so nothing is lost. */
export function roomConv(roomId) {
  const key = roomKey(roomId);
  const conv = state.convs.get(key);
  if (conv) return conv;
  return addRoom({ id: roomId, name: roomId }) || state.convs.get("all");
}

/** This user is no longer in the room: its view and list entry go. */
export function dropRoom(roomId) {
  if (!roomId || roomId === "general") return;
  state.rooms.delete(roomId);
  state.members.delete(roomId);
  const key = roomKey(roomId);
  const conv = state.convs.get(key);
  if (conv) {
    for (const [id, m] of state.messages) if (m.key === key) state.messages.delete(id);
    state.convs.delete(key);
  }
  persistRooms();
  renderRoomList();
}

/** At load: general, and the rooms the last welcome listed (until the next one). */
export function restoreRooms() {
  addRoom(GENERAL);
  const saved = storage.get("rooms", []);
  for (const raw of Array.isArray(saved) ? saved : []) if (raw && raw.id !== "general") addRoom(raw, raw.role);
}

/** A welcome's `rooms`: the list becomes exactly these, with their counts. */
export function takeWelcomeRooms(list) {
  const seen = new Set(["general"]);
  for (const item of list) {
    if (!item || !item.room) continue;
    const conv = addRoom(item.room, item.role);
    if (!conv) continue;
    seen.add(conv.room.id);
    takeCounts(conv, item);
  }
  for (const id of [...state.rooms.keys()]) if (!seen.has(id)) dropRoom(id);
}

/** Unread and mention counts and the read marker, as a welcome says. */
export function takeCounts(conv, item) {
  const count = (v) => (Number.isSafeInteger(v) && v > 0 ? v : 0);
  conv.readId = Math.max(conv.readId, count(item.read_id));
  conv.unread = count(item.unread);
  conv.mentions = Math.min(conv.unread, count(item.mentions));
  renderBadge(conv);
}

export { roomIdOf, roomKey };
