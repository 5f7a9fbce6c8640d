// localStorage behind the "quartchat." prefix, JSON-encoded; never throws.

import { STORE_PREFIX } from "./constants.js";

export const storage = {
  get(key, fallback = null) {
    try {
      const raw = localStorage.getItem(STORE_PREFIX + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(STORE_PREFIX + key);
      else localStorage.setItem(STORE_PREFIX + key, JSON.stringify(value));
    } catch {
      /* private mode or quota: the page still works, it just forgets */
    }
  },
};
