// "@" in the composer suggests people to mention: the members of the shown
// room (its `members` answer), everyone online and seen writing in general,
// the other person in a private conversation. Arrow keys move, Enter or Tab
// picks, Escape closes; picking inserts "@nick ". The list is a listbox the
// message box points into with aria-activedescendant, so focus stays in the box.

import { avatar, el } from "./util.js";
import { isMe, state } from "./state.js";
import { dom } from "./dom.js";
import { roomIdOf } from "./conversations.js";

const MAX_SHOWN = 8;
// An "@" at the start or after a space or an opening bracket, then the
// part of a nick typed so far (no space), up to the caret.
const TOKEN = /(^|[\s([{"'])@([^\s@]{0,64})$/u;

let shown = []; // [{id, nick}]
let index = 0;
let token = null; // {start, end, query}

function people() {
  const key = state.active;
  const roomId = roomIdOf(key);
  const found = new Map();
  if (roomId && roomId !== "general") {
    for (const m of state.members.get(roomId) || []) found.set(m.id, m.nick);
  } else if (roomId === "general") {
    for (const [id, nick] of state.known) found.set(id, nick);
    for (const [id, nick] of state.online) found.set(id, nick);
  } else {
    const conv = state.convs.get(key);
    found.set(key, (conv && conv.nick) || state.online.get(key) || "someone");
  }
  return [...found].filter(([id]) => !isMe(id)).map(([id, nick]) => ({ id, nick }));
}

function tokenAtCaret() {
  const input = dom.input;
  if (input.selectionStart !== input.selectionEnd) return null;
  const end = input.selectionStart;
  const match = TOKEN.exec(input.value.slice(0, end));
  if (!match) return null;
  return { start: end - match[2].length - 1, end, query: match[2].toLocaleLowerCase() };
}

function matches(query) {
  const all = people().sort((a, b) => a.nick.localeCompare(b.nick, undefined, { sensitivity: "base" }));
  const starts = all.filter((p) => p.nick.toLocaleLowerCase().startsWith(query));
  const inside = all.filter((p) => !starts.includes(p) && p.nick.toLocaleLowerCase().includes(query));
  return [...starts, ...inside].slice(0, MAX_SHOWN);
}

export function closeMentions() {
  shown = [];
  token = null;
  dom.mentionList.hidden = true;
  dom.mentionList.replaceChildren();
  dom.input.removeAttribute("aria-activedescendant");
  dom.input.removeAttribute("aria-controls");
}

function render() {
  const items = shown.map((p, i) => {
    const li = el("li", "mention-option");
    li.id = `mention-option-${i}`;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(i === index));
    li.dataset.index = String(i);
    const nick = el("span", "mention-nick", p.nick);
    nick.dir = "auto";
    li.append(avatar(p.id, p.nick), nick);
    return li;
  });
  dom.mentionList.replaceChildren(...items);
  dom.mentionList.hidden = false;
  dom.input.setAttribute("aria-controls", "mention-list");
  dom.input.setAttribute("aria-activedescendant", `mention-option-${index}`);
  const current = dom.mentionList.children[index];
  if (current) current.scrollIntoView({ block: "nearest" });
}

/** Look at the text before the caret: open, narrow or close the list. */
function refresh() {
  token = tokenAtCaret();
  const found = token ? matches(token.query) : [];
  if (!found.length) {
    closeMentions();
    return;
  }
  const same = found.length === shown.length && found.every((p, i) => p.id === shown[i].id);
  if (!same) index = 0;
  shown = found;
  render();
}

function pick(i) {
  const person = shown[i];
  if (!person || !token) return;
  const input = dom.input;
  const text = `@${person.nick} `;
  input.value = input.value.slice(0, token.start) + text + input.value.slice(token.end);
  const caret = token.start + text.length;
  input.setSelectionRange(caret, caret);
  closeMentions();
  // The composer's own input handling: the draft, the counter, typing.
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

function onKeydown(event) {
  if (dom.mentionList.hidden || !shown.length || event.isComposing) return;
  const n = shown.length;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    index = (index + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
    render();
  } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
    pick(index);
  } else if (event.key === "Escape") {
    closeMentions();
  } else {
    return;
  }
  event.preventDefault();
  event.stopImmediatePropagation(); // not a send, not the drawer's Escape
}

/** Must run before the composer's listeners: Enter picks while the list is open. */
export function wireMentions() {
  dom.input.addEventListener("keydown", onKeydown);
  dom.input.addEventListener("input", refresh);
  dom.input.addEventListener("click", refresh);
  dom.input.addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== dom.input) closeMentions();
  }, 0));
  // A pointer picks without taking focus from the message box.
  dom.mentionList.addEventListener("mousedown", (event) => event.preventDefault());
  dom.mentionList.addEventListener("click", (event) => {
    const option = event.target.closest("[data-index]");
    if (option) pick(Number(option.dataset.index));
  });
}
