// A message's text as DOM nodes: http(s) and www. links, `inline code` and
// ``` fenced ``` code blocks. Everything else stays a text node: nothing the
// sender wrote is ever parsed as HTML.
//
// A link's text says what it opens. It holds no bidi control and is drawn
// left to right in an isolate (dir=ltr), so no override around it reverses
// it; its host is the one the browser opens (see linkhost.js: punycode when
// the host mixes scripts); and a URL with a userinfo part ("x@host") is not
// linked at all, since "https://google.com\u2215@evil.example/" opens
// evil.example while it reads as google.com.

import { shownHost } from "./linkhost.js";
import { el } from "./util.js";

const FENCE = "```";
const INLINE_CODE = /`([^`\n]+)`/g;
// A link starts at http://, https:// or www. and runs to whitespace, a
// character that cannot end a URL in running text, or a bidi control
// (embeddings, overrides, isolates, and the LRM, RLM and ALM marks).
const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"'`\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+/gi;
// Where the host ends in a link's text: the start of port, path, query or
// fragment (a backslash counts as a slash in http(s) URLs).
const AUTHORITY_END = /[/?#\\]/;
const TRAILING_PUNCTUATION = /[.,;:!?'"»)\]}]+$/;
// A first line like "js" or "python" after ``` names the language: not code.
const LANGUAGE_LINE = /^[\w+#.-]{1,20}\n/;

/** Fragment for the whole text: fenced blocks first, then inline code and links. */
export function renderText(text) {
  const out = document.createDocumentFragment();
  const parts = text.split(FENCE);
  // An odd part is inside a fence; an unclosed last fence is plain text.
  const closed = parts.length % 2 === 1 ? parts.length : parts.length - 1;
  for (let i = 0; i < parts.length; i += 1) {
    if (i % 2 === 1 && i < closed) {
      out.append(codeBlock(parts[i]));
      continue;
    }
    let plain = i % 2 === 1 ? FENCE + parts[i] : parts[i];
    // A block starts on a line of its own: the line breaks around it are its edges.
    if (i > 0 && i - 1 < closed) plain = plain.replace(/^\n/, "");
    if (i + 1 < closed) plain = plain.replace(/\n$/, "");
    appendInline(out, plain);
  }
  return out;
}

function codeBlock(raw) {
  const body = raw.replace(LANGUAGE_LINE, "").replace(/^\n/, "").replace(/\n$/, "");
  const pre = el("pre", "msg-code-block");
  pre.append(el("code", null, body));
  pre.dir = "ltr";
  return pre;
}

function appendInline(out, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE_CODE)) {
    appendLinks(out, text.slice(last, match.index));
    const code = el("code", "msg-code", match[1]);
    code.dir = "ltr";
    out.append(code);
    last = match.index + match[0].length;
  }
  appendLinks(out, text.slice(last));
}

function appendLinks(out, text) {
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    const shown = trimUrl(match[0]);
    const link = safeLink(shown);
    if (!link) continue;
    out.append(document.createTextNode(text.slice(last, match.index)), link);
    last = match.index + shown.length;
  }
  if (last < text.length) out.append(document.createTextNode(text.slice(last)));
}

/** Drop punctuation that ends the sentence rather than the URL, keeping a
 *  closing parenthesis that matches one inside it (wiki-style links). */
function trimUrl(raw) {
  let url = raw.replace(TRAILING_PUNCTUATION, "");
  const rest = raw.slice(url.length);
  for (const ch of rest) {
    if (ch === ")" && count(url, "(") > count(url, ")")) url += ch;
    else break;
  }
  return url;
}

function count(text, ch) {
  return text.split(ch).length - 1;
}

/** An <a> that opens the http(s) URL in a new tab without giving it a
 *  handle on this page, or null when the text is no such URL or has a
 *  userinfo part. */
function safeLink(shown) {
  let url;
  try {
    url = new URL(/^www\./i.test(shown) ? `https://${shown}` : shown);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username || url.password) return null;
  const text = withHostShown(shown, url);
  if (text === null) return null;
  const a = el("a", "msg-link", text);
  a.href = url.href;
  a.dir = "ltr";
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

/** ``shown`` with the host as typed replaced by the host ``url`` opens,
 *  unless the two differ only in ASCII case; null when the typed authority
 *  holds an "@" (a userinfo part, even an empty one). */
function withHostShown(shown, url) {
  const start = /^www\./i.test(shown) ? 0 : shown.indexOf("//") + 2;
  const rest = shown.slice(start);
  const authorityEnd = rest.search(AUTHORITY_END);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  if (authority.includes("@")) return null;
  const portAt = authority.startsWith("[") ? authority.indexOf("]") + 1 : authority.indexOf(":");
  const typedHost = portAt > 0 ? authority.slice(0, portAt) : authority;
  const host = shownHost(url.hostname);
  if (typedHost.toLowerCase() === host) return shown;
  return shown.slice(0, start) + host + shown.slice(start + typedHost.length);
}
