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

function pad2(n) {
  return String(n).padStart(2, "0");
}

export function hhmm(ts) {
  const d = new Date(ts);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
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

export function hue(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
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
