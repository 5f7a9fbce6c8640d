// The JWT hook. A deployment with accounts of its own names a URL on the
// chat's origin in the page (<meta name="quartchat-jwt-url">, which the
// server writes from QUARTCHAT_JWT_URL). Before connecting, the page fetches
// it with the visitor's cookies; it answers {"jwt": "..."} for a visitor
// logged in there, and the page logs in with that JWT, in the hello (never in
// a URL: URLs end up in logs and history). It fetches a new one about a
// minute before that one expires, for the next (re)connect. An answer of
// {"jwt": null}, 204, 401, 403 or a redirect (to a login page) means "not
// logged in": the page is a guest then, with the anonymous token as before.
// The JWT is kept in memory only, never in storage.

const REFRESH_BEFORE_MS = 60_000; // fetch a new JWT this long before exp
const RETRY_MS = 15_000; // a refresh that failed is tried again after this
const NOT_LOGGED_IN = new Set([204, 401, 403]);

let held = null; // {jwt, expMs, fetchedAt}
let inflight = null;
let refreshTimer = 0;

/** The URL of the hook, when the page has one (a path on this origin). */
export function jwtUrl() {
  const meta = document.querySelector('meta[name="quartchat-jwt-url"]');
  const url = meta ? meta.getAttribute("content") : null;
  return url && /^\/(?![/\\])/.test(url) ? url : null;
}

/** A JWT's `exp` in ms, read from its payload (the server checks the
 *  signature; the page only needs to know when to fetch a new one). */
function expiryMs(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="))).exp;
    return Number.isFinite(exp) ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

function fresh() {
  if (!held) return false;
  const now = Date.now();
  // A token fetched a moment ago is used even if it lives less than a minute.
  return held.expMs - now > REFRESH_BEFORE_MS || (now - held.fetchedAt < 10_000 && held.expMs > now + 2_000);
}

function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    fetchJwt().catch(() => {
      if (held && held.expMs > Date.now()) scheduleRefresh(RETRY_MS);
    });
  }, delay);
}

const FETCH_TIMEOUT_MS = 15_000; // a backend that does not answer is tried again

async function load() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    return await ask(abort.signal);
  } finally {
    clearTimeout(timer);
  }
}

async function ask(signal) {
  const response = await fetch(jwtUrl(), {
    credentials: "include", cache: "no-store", redirect: "manual", signal,
    headers: { Accept: "application/json" },
  });
  if (response.type === "opaqueredirect" || NOT_LOGGED_IN.has(response.status)) return null;
  if (!response.ok) throw new Error(`the JWT URL answered ${response.status}`);
  const body = await response.json();
  if (body && body.jwt === null) return null;
  if (!body || typeof body.jwt !== "string" || !body.jwt) throw new Error("the JWT URL answered no jwt");
  return body.jwt;
}

/** Fetch a JWT now (one request at a time): the JWT, or null when the
 *  visitor is not logged in; rejects when the URL fails. */
export function fetchJwt() {
  if (!inflight) {
    inflight = load().then((jwt) => {
      clearTimeout(refreshTimer);
      held = jwt ? { jwt, expMs: expiryMs(jwt), fetchedAt: Date.now() } : null;
      if (held && held.expMs) scheduleRefresh(Math.max(10_000, held.expMs - REFRESH_BEFORE_MS - Date.now()));
      return jwt;
    }).finally(() => {
      inflight = null;
    });
  }
  return inflight;
}

/** The JWT to log in with now: the one held while it has over a minute
 *  left, else a new one (null when not logged in). */
export function loginJwt() {
  return fresh() ? Promise.resolve(held.jwt) : fetchJwt();
}

/** The server refused the JWT (4003): the next connect fetches another. */
export function forgetJwt() {
  held = null;
  clearTimeout(refreshTimer);
}
