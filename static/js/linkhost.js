// How a link's host is shown: the host the browser will open, in Unicode
// only when that cannot pass for another host. The URL API gives hostnames
// in their ASCII (punycode) form; a label is decoded back to Unicode for
// display when the whole host keeps to one script, or to one of the mixes
// Unicode TS #39 calls "highly restrictive" (Latin with Han and Japanese
// kana, with Han and Bopomofo, or with Han and Hangul), as browsers'
// address bars do. "g\u043e\u043egle.com", with two Cyrillic o, mixes Latin
// and Cyrillic, so it shows as "xn--ggle-55da.com".

const ACE_PREFIX = "xn--";

// Scripts a host may be shown in; a letter of any other script shows the
// host in punycode.
const SCRIPTS = [
  "Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Syriac", "Thaana",
  "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada",
  "Malayalam", "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Georgian", "Hangul",
  "Ethiopic", "Khmer", "Mongolian", "Han", "Hiragana", "Katakana", "Bopomofo",
].map((name) => [name, new RegExp(`^\\p{Script=${name}}$`, "u")]);

// The mixes of scripts TS #39's "highly restrictive" level allows.
const ALLOWED_MIXES = [
  ["Latin", "Han", "Hiragana", "Katakana"],
  ["Latin", "Han", "Bopomofo"],
  ["Latin", "Han", "Hangul"],
].map((mix) => new Set(mix));

// Characters a shown host may hold: letters, marks, digits, dots and hyphens.
// Anything else (a division slash U+2215, say) would draw as punctuation a
// reader takes for part of the URL's structure.
const HOST_CHARACTERS = /^[\p{L}\p{M}\p{N}.-]+$/u;
const COMMON_OR_INHERITED = /^[\p{Script=Common}\p{Script=Inherited}]$/u;

/** The host to show for a parsed URL's ASCII ``hostname``. */
export function shownHost(hostname) {
  if (!hostname.split(".").some((label) => label.startsWith(ACE_PREFIX))) return hostname;
  const labels = hostname.split(".").map((label) =>
    label.startsWith(ACE_PREFIX) ? decodePunycode(label.slice(ACE_PREFIX.length)) : label,
  );
  if (labels.includes(null)) return hostname;
  const unicode = labels.join(".");
  return HOST_CHARACTERS.test(unicode) && keepsToOneScript(unicode) ? unicode : hostname;
}

function keepsToOneScript(text) {
  const used = new Set();
  for (const ch of text) {
    if (COMMON_OR_INHERITED.test(ch)) continue;
    const script = SCRIPTS.find(([, pattern]) => pattern.test(ch));
    if (!script) return false;
    used.add(script[0]);
  }
  if (used.size <= 1) return true;
  return ALLOWED_MIXES.some((mix) => [...used].every((name) => mix.has(name)));
}

// Punycode (RFC 3492) decoding, with the parameters the RFC gives for IDNA.
const BASE = 36;
const T_MIN = 1;
const T_MAX = 26;
const SKEW = 38;
const DAMP = 700;
const INITIAL_BIAS = 72;
const INITIAL_N = 128;
const MAX_CODE_POINT = 0x10ffff;

/** The Unicode label a punycode string (without "xn--") stands for, or null. */
export function decodePunycode(encoded) {
  const delimiter = encoded.lastIndexOf("-");
  const output = [];
  for (const ch of delimiter > 0 ? encoded.slice(0, delimiter) : "") {
    if (ch.codePointAt(0) >= INITIAL_N) return null;
    output.push(ch.codePointAt(0));
  }
  let codePoint = INITIAL_N;
  let bias = INITIAL_BIAS;
  let index = 0;
  let pos = delimiter > 0 ? delimiter + 1 : 0;
  while (pos < encoded.length) {
    const before = index;
    let weight = 1;
    for (let k = BASE; ; k += BASE) {
      if (pos >= encoded.length) return null;
      const digit = digitValue(encoded[pos]);
      pos += 1;
      if (digit < 0) return null;
      index += digit * weight;
      const threshold = k <= bias ? T_MIN : k >= bias + T_MAX ? T_MAX : k - bias;
      if (digit < threshold) break;
      weight *= BASE - threshold;
      if (index > MAX_CODE_POINT * (output.length + 1)) return null;
    }
    const length = output.length + 1;
    bias = adapt(index - before, length, before === 0);
    codePoint += Math.floor(index / length);
    index %= length;
    if (codePoint > MAX_CODE_POINT) return null;
    output.splice(index, 0, codePoint);
    index += 1;
  }
  return String.fromCodePoint(...output);
}

function digitValue(ch) {
  const code = ch.charCodeAt(0);
  if (code >= 0x30 && code <= 0x39) return code - 0x30 + 26; // "0"-"9" are 26-35
  if (code >= 0x61 && code <= 0x7a) return code - 0x61; // "a"-"z" are 0-25
  if (code >= 0x41 && code <= 0x5a) return code - 0x41;
  return -1;
}

function adapt(delta, length, first) {
  let scaled = first ? Math.floor(delta / DAMP) : Math.floor(delta / 2);
  scaled += Math.floor(scaled / length);
  let k = 0;
  while (scaled > ((BASE - T_MIN) * T_MAX) >> 1) {
    scaled = Math.floor(scaled / (BASE - T_MIN));
    k += BASE;
  }
  return k + Math.floor(((BASE - T_MIN + 1) * scaled) / (scaled + SKEW));
}
