// Streaming a turn: POST with fetch and read the text/event-stream body ourselves, because
// EventSource can only GET.

import {SSEParser} from "/common/static/sse.js";
import {headers, send} from "./api.js";

/**
 * POST `body` to `url` and stream the chat chunks. Callbacks:
 *   onRequestId(id)   as soon as it is known (the X-Request-Id header, else the first chunk)
 *   onDelta(text)     each piece of the reply
 * Resolves to {finishReason, error, requestId}: `error` is the body of a mid-stream
 * `data: {"error": ...}` event. A refused request (4xx/5xx before streaming) rejects with
 * ApiError, which carries Retry-After for 429/503.
 */
export async function streamTurn(url, body, {onRequestId, onDelta, signal} = {}) {
  const response = await send(url, {
    method: "POST",
    headers: headers("POST", {Accept: "text/event-stream"}),
    body: JSON.stringify(body),
    signal,
  });
  let requestId = response.headers.get("X-Request-Id");
  if (requestId && onRequestId) onRequestId(requestId);

  const result = {finishReason: null, error: null, requestId};
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SSEParser();
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    for (const message of parser.push(decoder.decode(value, {stream: true}))) {
      if (message.data === "[DONE]") return result;
      let chunk;
      try {
        chunk = JSON.parse(message.data);
      } catch {
        continue; // not JSON: not part of the contract, skip it
      }
      if (chunk.error) {
        result.error = chunk.error;
        continue;
      }
      if (!requestId && chunk.id) {
        requestId = chunk.id;
        result.requestId = requestId;
        if (onRequestId) onRequestId(requestId);
      }
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      const text = choice.delta && choice.delta.content;
      if (text && onDelta) onDelta(text);
      if (choice.finish_reason) result.finishReason = choice.finish_reason;
    }
  }
  return result; // the body ended without [DONE]: whatever arrived is what there is
}
