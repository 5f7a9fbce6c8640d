// Tunables and limits: timings, sizes, and the formats the client accepts.

export const STORE_PREFIX = "quartchat.";
export const ACK_TIMEOUT_MS = 10_000;
export const MAX_RETRIES = 3; // after the first send
export const PING_EVERY_MS = 10_000;
// Any frame proves the socket alive; a pong answers each ping within one
// interval, so this much silence means a dead connection the browser missed.
export const DEAD_AFTER_MS = 25_000;
export const WELCOME_TIMEOUT_MS = 15_000;
export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10_000;
export const TYPING_THROTTLE_MS = 2_000;
export const TYPING_IDLE_MS = 3_000;
export const TYPING_STALE_MS = 6_000;
export const HISTORY_LIMIT = 50;
export const HISTORY_TIMEOUT_MS = 15_000;
// Until a welcome says otherwise (its `limits`): the protocol's defaults.
export const DEFAULT_MAX_TEXT = 2000;
export const DEFAULT_MAX_NICK = 32;
// The length counter shows from this many code points below the limit.
export const COUNTER_MARGIN = 200;
// Consecutive messages of one person this close together share one header.
export const GROUP_WITHIN_MS = 5 * 60_000;
export const NEAR_BOTTOM_PX = 80;
export const NEAR_TOP_PX = 120;
export const MAX_INFLIGHT = 1; // unacked sends at once: 1 keeps our own order under rate limits
export const PACE_MS = 150; // spacing between sends for a while after rate_limited
export const PACE_FOR_MS = 30_000;
export const OFFSET_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const NICK_BAD_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
