// Writing frames to the current WebSocket, if it is open.

import { state } from "./state.js";

/** Open and welcomed: the server takes sends, history, typing and nick frames. */
export function canSend() {
  return state.welcomed && state.ws && state.ws.readyState === WebSocket.OPEN;
}

/** Send one frame on the open socket; false if it could not go out. */
export function sendFrame(obj) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  try {
    ws.send(JSON.stringify(obj));
    return true;
  } catch {
    return false;
  }
}
