// Day dividers and grouping in a conversation pane. A divider ("Today",
// "Yesterday", then a date in the reader's locale) sits right before the first
// message of each day; a message from the same person as the one right above
// it, within GROUP_WITHIN_MS on the same day, joins its group and shows no
// header of its own. Both are fixed locally around every change (a message
// placed, moved or removed, a notice added), so live messages, replays and
// older pages prepended by history all keep them right.

import { GROUP_WITHIN_MS } from "./constants.js";
import { el } from "./util.js";

const DAY_MS = 86_400_000;

function isMsg(node) {
  return !!node && node.classList.contains("msg");
}

function isDivider(node) {
  return !!node && node.classList.contains("day");
}

function nextMsg(node) {
  let next = node.nextElementSibling;
  while (next && !isMsg(next)) next = next.nextElementSibling;
  return next;
}

function startOfDay(ts) {
  const d = new Date(ts);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

export function dayLabel(ts, now = Date.now()) {
  // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
  const daysAgo = Math.round((startOfDay(now) - startOfDay(ts)) / DAY_MS);
  if (daysAgo === 0) return "Today";
  if (daysAgo === 1) return "Yesterday";
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear();
  return new Date(ts).toLocaleDateString(undefined, {
    weekday: "long", day: "numeric", month: "long", year: sameYear ? undefined : "numeric",
  });
}

function makeDivider(ts) {
  const divider = el("div", "day");
  divider.setAttribute("role", "separator");
  const label = el("span", "day-label");
  divider.append(label);
  setDividerDay(divider, ts);
  return divider;
}

function setDividerDay(divider, ts) {
  divider.dataset.day = String(startOfDay(ts));
  const text = dayLabel(ts);
  divider.firstElementChild.textContent = text;
  divider.setAttribute("aria-label", text);
}

/** Put the divider and the group header of one message right. */
function fix(node) {
  const ts = Number(node.dataset.ts);
  let prev = node.previousElementSibling;
  let divider = null;
  // Between this message and the one before it there is at most one divider,
  // right before this message.
  while (prev && !isMsg(prev)) {
    const before = prev.previousElementSibling;
    if (isDivider(prev)) {
      if (divider) divider.remove();
      divider = prev;
    }
    prev = before;
  }
  const newDay = !prev || startOfDay(Number(prev.dataset.ts)) !== startOfDay(ts);
  if (newDay) {
    if (!divider) divider = makeDivider(ts);
    else if (divider.dataset.day !== String(startOfDay(ts))) setDividerDay(divider, ts);
    if (node.previousElementSibling !== divider) node.before(divider);
  } else if (divider) {
    divider.remove();
  }
  const above = node.previousElementSibling; // a notice or divider in between ends a group
  const grouped = isMsg(above)
    && above.dataset.from === node.dataset.from
    && ts - Number(above.dataset.ts) < GROUP_WITHIN_MS;
  node.classList.toggle("grouped", grouped);
}

/** After `node` (a message, notice or divider) was inserted or changed:
 *  fix it, if it is a message, and the message after it. */
export function relayout(node) {
  if (!node.parentElement) return;
  if (isMsg(node)) fix(node);
  const next = nextMsg(node);
  if (next) fix(next);
}

/** Remove a message (or notice) and fix the message that followed it. */
export function removeAndRelayout(node) {
  const next = nextMsg(node);
  if (isDivider(node.previousElementSibling)) node.previousElementSibling.remove(); // it was this one's
  node.remove();
  if (next) fix(next);
}

/** Relabel dividers once the date has changed ("Today" becomes "Yesterday"). */
export function relabelDividers(panes) {
  for (const pane of panes) {
    for (const divider of pane.querySelectorAll(".day")) setDividerDay(divider, Number(divider.dataset.day));
  }
}
