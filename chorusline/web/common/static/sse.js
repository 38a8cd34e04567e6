// Server-sent events read with fetch() rather than EventSource, which can neither POST
// (a streamed turn) nor send an Authorization header (the console's feed): so each page
// parses the event stream itself, with this one parser.

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
    if (line.startsWith(":")) return null; // a comment (": keep-alive")
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    return null;
  }
}
