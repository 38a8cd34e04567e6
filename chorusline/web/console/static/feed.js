// The admin event feed: server-sent events read with fetch(), because EventSource cannot
// send an Authorization header. Parses SSE itself and reconnects with backoff (but never
// after a 401/403: a wrong key does not become right by asking again).

import {ApiError, authHeaders, errorFrom} from "./api.js";

/** Incremental SSE parser: push() decoded text, get complete {event, data} messages. */
export class SSEParser {
  constructor() {
    this.buffer = "";
    this.event = "";
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    const messages = [];
    let start = 0;
    for (;;) {
      // A line ends at \n, \r\n or \r (a lone \r at the very end may be half of \r\n).
      const lf = this.buffer.indexOf("\n", start);
      const cr = this.buffer.indexOf("\r", start);
      let end;
      let next;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        if (cr === this.buffer.length - 1) break;
        end = cr;
        next = this.buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else break;
      const message = this.line(this.buffer.slice(start, end));
      if (message) messages.push(message);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return messages;
  }

  line(line) {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const message = {event: this.event || "message", data: this.data.join("\n")};
      this.event = "";
      this.data = [];
      return message;
    }
    if (line.startsWith(":")) return null; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    return null;
  }
}

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
