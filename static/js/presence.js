// Who is online: the sidebar list and presence frames (join, leave, nick change).

import { storage } from "./storage.js";
import { avatar, el, icon } from "./util.js";
import { isMe, state } from "./state.js";
import { dom } from "./dom.js";
import { clearTyping, renderTyping } from "./typing.js";
import { getConv, renderTab } from "./conversations.js";
import { addNotice } from "./messages.js";
import { nickRequestDone, setWantedNick } from "./nick.js";

function nickEl(nick) {
  const node = el("span", "user-nick", nick);
  node.dir = "auto";
  return node;
}


/** A speech bubble shown on hover and focus: this person can be messaged privately. */
function privateHint() {
  const hint = el("span", "user-hint");
  hint.setAttribute("aria-hidden", "true");
  hint.append(icon("M5 4h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-8l-5 4v-4H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"));
  return hint;
}

export function renderOnline() {
  const list = [...state.online.entries()].sort((a, b) => {
    if (isMe(a[0])) return -1;
    if (isMe(b[0])) return 1;
    return a[1].localeCompare(b[1], undefined, { sensitivity: "base" });
  });
  const items = [];
  for (const [id, nick] of list) {
    const li = el("li", "online-item");
    li.dataset.userId = id;
    if (isMe(id)) {
      li.classList.add("self");
      const row = el("span", "user-row");
      row.append(avatar(id, nick), nickEl(nick), el("span", "you-tag", "(you)"));
      li.append(row);
    } else {
      // The button's visible text is the nick alone, which its name contains
      // (WCAG 2.5.3, label in name): the avatar's initial sits beside the
      // button, over it, and the private-message hint is a picture.
      const button = el("button", "user-row user-button");
      button.type = "button";
      button.setAttribute("aria-label", `Message ${nick} privately`);
      if (state.active === id) button.setAttribute("aria-current", "true");
      button.append(nickEl(nick), privateHint());
      li.append(avatar(id, nick), button);
    }
    items.push(li);
  }
  dom.online.replaceChildren(...items);
  const n = state.online.size;
  dom.onlineCount.textContent = String(n);
  dom.onlineBadge.textContent = String(n);
  // The name holds the count the button shows, outside brackets (which
  // label-in-name checks leave out).
  dom.sidebarToggle.setAttribute("aria-label", `Rooms, and who is online: ${n}`);
  for (const conv of state.convs.values()) if (conv.tab && conv.key !== "all") renderTab(conv);
}

export function onPresence(frame) {
  const user = frame.user || {};
  const id = user.id;
  if (!id) return;
  if (frame.event === "join") {
    state.online.set(id, user.nick);
    if (!isMe(id)) {
      addNotice("all", `${user.nick} joined`);
      const conv = state.convs.get(id);
      if (conv && conv.listed) addNotice(id, `${user.nick} joined`);
    }
  } else if (frame.event === "leave") {
    const nick = user.nick || state.online.get(id) || "someone";
    state.online.delete(id);
    for (const key of state.typingIn.keys()) clearTyping(key, id);
    if (!isMe(id)) {
      addNotice("all", `${nick} left`);
      const conv = state.convs.get(id);
      if (conv && conv.listed) addNotice(id, `${nick} left`);
    }
  } else if (frame.event === "nick") {
    const old = frame.old_nick || state.online.get(id) || "someone";
    state.online.set(id, user.nick);
    const conv = state.convs.get(id);
    if (conv) getConv(id, user.nick);
    for (const map of state.typingIn.values()) {
      const t = map.get(id);
      if (t) t.nick = user.nick;
    }
    if (isMe(id)) {
      state.user = { id, nick: user.nick };
      storage.set("user", state.user);
      dom.me.textContent = user.nick;
      if (state.nickRequest) nickRequestDone(null);
      if (state.wantedNick && state.wantedNick === user.nick) setWantedNick(null);
      addNotice("all", `${old} is now ${user.nick} (you)`);
    } else {
      addNotice("all", `${old} is now ${user.nick}`);
      if (conv && conv.listed) {
        addNotice(id, `${old} is now ${user.nick}`);
        if (state.active === id) dom.input.placeholder = `Private message to ${user.nick}`;
      }
    }
    renderTyping();
  }
  renderOnline();
}
