// The composer's look as its text changes: its height, and the length
// counter that appears near the server's limit and, past it, disables Send
// and says why beside the composer.

import { COUNTER_MARGIN } from "./constants.js";
import { codePoints, trimMessage } from "./util.js";
import { state } from "./state.js";
import { dom } from "./dom.js";

/** How many code points the composer's text will be once trimmed, as the
 *  server counts them, and whether that is over the limit. */
export function measureComposer() {
  const length = codePoints(trimMessage(dom.input.value));
  return { length, over: length > state.limits.text };
}

export function refreshComposer() {
  const input = dom.input;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;

  const limit = state.limits.text;
  const { length, over } = measureComposer();
  const count = dom.composerCount;
  count.hidden = length < limit - COUNTER_MARGIN;
  count.classList.toggle("over", over);
  const figures = `${length.toLocaleString()} / ${limit.toLocaleString()}`;
  count.textContent = over
    ? `${figures}: too long to send, ${(length - limit).toLocaleString()} over the limit`
    : figures;
  dom.send.disabled = over;
  if (over) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}
