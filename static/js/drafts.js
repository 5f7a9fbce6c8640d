// Drafts: what was typed in the composer, kept per conversation across
// reloads (re-read on every use, so two tabs do not erase each other's).

import { storage } from "./storage.js";

function all() {
  const saved = storage.get("drafts", {});
  return saved && typeof saved === "object" && !Array.isArray(saved) ? saved : {};
}

export function loadDraft(convKey) {
  const text = all()[convKey];
  return typeof text === "string" ? text : "";
}

export function saveDraft(convKey, text) {
  const drafts = all();
  if (text) drafts[convKey] = text;
  else delete drafts[convKey];
  storage.set("drafts", drafts);
}
