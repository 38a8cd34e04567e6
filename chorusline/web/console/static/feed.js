// The admin event feed: server-sent events read with fetch(), because EventSource cannot
// send an Authorization header. Parses SSE itself and reconnects with backoff (but never
// after a 401/403: a wrong key does not become right by asking again).

import {ApiError, errorFrom} from "/common/static/errors.js";
import {SSEParser} from "/common/static/sse.js";
import {authHeaders} from "./api.js";

const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 30000;

/**
 * Read the feed until stop(). Callbacks:
 *  onMessage(eventName, payload)   each parsed message (payload is the JSON data)
 *  onStatus(state, text)           state: connecting | live | reconnecting | error
 *  onAuthError(ApiError)           401/403: the feed stops for good
 */
export function startFeed({url, onMessage, onStatus, onAuthError, staleAfterMs = 15000}) {
  let stopped = false;
  let controller = null;
  let retryTimer = null;
  let backoff = BACKOFF_START_MS;
  let attempt = 0;

  async function connect() {
    attempt += 1;
    onStatus(attempt === 1 ? "connecting" : "reconnecting", attempt === 1 ? "connecting…" : "reconnecting…");
    controller = new AbortController();
    const mine = controller;
    let watchdog = null;
    const kick = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => mine.abort(), staleAfterMs);
    };
    try {
      kick();
      const response = await fetch(url, {
        headers: authHeaders({Accept: "text/event-stream"}),
        cache: "no-store",
        signal: mine.signal,
      });
      if (!response.ok) {
        const error = await errorFrom(response);
        if (error.isAuth) {
          clearTimeout(watchdog);
          stopped = true;
          onStatus("error", `refused (${response.status})`);
          onAuthError(error);
          return;
        }
        throw error;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder("utf-8");
      const parser = new SSEParser();
      let live = false;
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        kick();
        for (const message of parser.push(decoder.decode(value, {stream: true}))) {
          let payload;
          try {
            payload = JSON.parse(message.data);
          } catch {
            continue; // not JSON: not part of the contract, skip it
          }
          if (!live) {
            live = true;
            backoff = BACKOFF_START_MS;
            onStatus("live", "live");
          }
          if (stopped) return;
          try {
            onMessage(message.event, payload);
          } catch (error) {
            console.error("console: handling a feed message failed", error);
          }
        }
      }
      if (stopped) return;
      retry("the feed ended");
    } catch (error) {
      if (stopped) return;
      const text = error instanceof ApiError ? error.message
        : mine.signal.aborted ? "the feed went quiet" : "connection lost";
      retry(text, error instanceof ApiError);
    } finally {
      clearTimeout(watchdog);
    }
  }

  function retry(reason, isError = false) {
    const wait = Math.round(backoff * (0.8 + Math.random() * 0.4));
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    onStatus(isError ? "error" : "reconnecting",
      `${reason}; retrying in ${Math.max(1, Math.round(wait / 1000))} s`);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!stopped) connect();
    }, wait);
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      if (controller) controller.abort();
    },
  };
}
