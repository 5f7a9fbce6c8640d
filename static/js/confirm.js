// One confirmation dialog for what cannot be undone (deleting a message,
// banning someone): a question, what it does, the text concerned quoted (as
// text), and optionally a choice (how long). Cancel is focused first;
// Escape cancels. Focus goes back where it was, or to `fallback`.

import { el } from "./util.js";
import { dom } from "./dom.js";

let settle = null; // resolves the dialog open now

const QUOTE_MAX = 280; // code points of the quoted text shown

/** Ask; resolves to the choice's value ("" without choices) when confirmed,
 *  or null when cancelled. */
export function confirmAction({ title, help, quote = null, choices = null, choiceLabel = "How long", confirm, fallback = null }) {
  if (settle) settle(null);
  const opener = document.activeElement;
  dom.confirmTitle.textContent = title;
  dom.confirmHelp.textContent = help;
  const chars = quote === null ? [] : [...quote];
  dom.confirmQuote.hidden = !chars.length;
  dom.confirmQuote.textContent = chars.length > QUOTE_MAX ? `${chars.slice(0, QUOTE_MAX).join("")}…` : chars.join("");
  dom.confirmChoiceField.hidden = !choices;
  dom.confirmChoiceLabel.textContent = choiceLabel;
  dom.confirmChoice.replaceChildren(...(choices || []).map(({ value, label }) => {
    const option = el("option", null, label);
    option.value = value;
    return option;
  }));
  dom.confirmOk.textContent = confirm;
  dom.confirmDialog.returnValue = "";
  if (!dom.confirmDialog.open) dom.confirmDialog.showModal();
  dom.confirmCancel.focus();
  return new Promise((resolve) => {
    settle = (value) => {
      settle = null;
      resolve(value);
      const back = [opener, fallback].find((node) => node && node.isConnected && node.getClientRects().length && !node.closest("[inert]"));
      (back || dom.input).focus();
    };
  });
}

export function wireConfirm() {
  dom.confirmCancel.addEventListener("click", () => dom.confirmDialog.close(""));
  dom.confirmForm.addEventListener("submit", (event) => {
    event.preventDefault();
    dom.confirmDialog.close("ok");
  });
  dom.confirmDialog.addEventListener("close", () => {
    if (!settle) return;
    const ok = dom.confirmDialog.returnValue === "ok";
    settle(ok ? (dom.confirmChoiceField.hidden ? "" : dom.confirmChoice.value) : null);
  });
}
