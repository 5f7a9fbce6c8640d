// Pure helpers: random ids, code-point length, time formatting, and text-only element builders.

export function randomId(length) {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

export function codePoints(text) {
  return [...text].length;
}

// What the server trims off both ends of a message: the characters Python's
// str.isspace() accepts (JavaScript's trim() differs: it keeps U+001C-U+001F
// and U+0085, and strips U+FEFF).
const EDGE_SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const EDGES = new RegExp(`^${EDGE_SPACE}+|${EDGE_SPACE}+$`, "g");
// A message of nothing but these is empty, as the server judges it: spaces,
// and default-ignorable characters, which draw nothing (zero-width spaces,
// joiners, direction marks, variation selectors, Hangul fillers...).
const BLANK = new RegExp(`^(?:${EDGE_SPACE}|\\p{Default_Ignorable_Code_Point})*$`, "u");

export function trimMessage(text) {
  return text.replace(EDGES, "");
}

export function isBlank(text) {
  return BLANK.test(text);
}

/** Hours and minutes as the reader's locale writes them ("14:05", "02:05 PM"). */
export function hhmm(ts) {
  return new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function fullDate(ts) {
  return new Date(ts).toLocaleString(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit",
  });
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// A 32-bit hash in which every input bit moves about half the output bits:
// FNV-1a over the UTF-16 code units, then murmur3's finaliser. FNV-1a alone
// (like the old h * 31 + c) changes mostly the low bits for a change in the
// last character, so ids alike but for a counter got hues a degree apart.
function hash32(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A user's hue (0-359) for their avatar and nick, the same on every page. */
export function hue(id) {
  return Math.floor((hash32(String(id)) / 2 ** 32) * 360);
}

function initial(nick) {
  const first = [...String(nick || "?").trim()][0] || "?";
  return first.toUpperCase();
}

export function avatar(id, nick) {
  const a = el("span", "avatar", initial(nick));
  a.setAttribute("aria-hidden", "true");
  a.style.setProperty("--h", String(hue(id)));
  return a;
}

const SVG = "http://www.w3.org/2000/svg";

/** A 14-pixel icon of one path (``d``), drawn in the text's colour. */
export function icon(d) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}
