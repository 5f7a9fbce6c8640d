// Mutes on this user (protocol 1.1): where one holds (a room, or everywhere)
// and until when, learnt from a refused send's `muted` error or from the
// `mute` notice the server sends the muted user; and the note beside the
// composer that says so in the conversation shown. The note goes by itself
// when the mute ends.

import { fullDate, hhmm } from "./util.js";
import { state } from "./state.js";
import { dom } from "./dom.js";
import { roomIdOf } from "./conversations.js";

let timer = 0;
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** "until 14:05" today, else with the date; "for good" without an end. */
export function untilText(until) {
  if (until === Infinity || until === null) return "for good";
  const today = new Date(until).toDateString() === new Date().toDateString();
  return `until ${today ? hhmm(until) : fullDate(until)}`;
}

/** A mute on this user: in `room` (an id; null: everywhere) until `until`
 *  (ms; null: for good; 0 or past: lifted). */
export function setMute(room, until) {
  const key = room || "*";
  if (until === 0 || (typeof until === "number" && until <= Date.now())) state.mutes.delete(key);
  else state.mutes.set(key, typeof until === "number" ? until : Infinity);
  renderMuteNote();
}

/** The mute that holds in conversation `key` now: {until, everywhere}, or null. */
export function muteIn(key) {
  const now = Date.now();
  for (const [where, until] of state.mutes) if (until <= now) state.mutes.delete(where);
  const room = roomIdOf(key);
  if (room && state.mutes.has(room)) return { until: state.mutes.get(room), everywhere: false };
  if (state.mutes.has("*")) return { until: state.mutes.get("*"), everywhere: true };
  return null;
}

/** Why a send or edit was refused, for the message's own note. */
export function mutedReason(until, everywhere) {
  return `you are muted ${everywhere ? "everywhere" : "in this room"} ${untilText(until)}`;
}

/** The note beside the composer, for the conversation shown. */
export function renderMuteNote() {
  clearTimeout(timer);
  const mute = muteIn(state.active);
  const text = mute
    ? `You are muted ${mute.everywhere ? "everywhere" : "in this room"} ${untilText(mute.until)}: what you write here is not sent.`
    : "";
  if (dom.composerNote.textContent !== text) dom.composerNote.textContent = text;
  dom.composerNote.hidden = !mute;
  let next = Infinity;
  for (const until of state.mutes.values()) next = Math.min(next, until);
  if (next !== Infinity) timer = setTimeout(renderMuteNote, Math.min(LONGEST_TIMER_MS, Math.max(0, next - Date.now()) + 50));
}
