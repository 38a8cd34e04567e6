// Turn traces: the list of in-flight and recent finished turns, and a waterfall of the
// chosen one (one row per span, the bar placed by start and duration over the total).

import {ApiError, get} from "./api.js";
import {h, reorder, replace, setAttr, setText} from "/common/static/dom.js";
import {clock, ms, num} from "./format.js";

const KEEP = 200;
const ENGINE_SPANS = new Set(["admission", "queue", "prefill", "first_token", "decode", "requeued"]);
const SPAN_FIELDS = new Set(["name", "path", "start_ms", "end_ms", "duration_ms"]);

export class TracePanel {
  constructor({list, view, count}) {
    this.list = list;
    this.view = view;
    this.count = count;
    this.finished = []; // newest first
    this.live = new Map(); // request_id -> summary (no spans)
    this.items = new Map(); // request_id -> li
    this.selected = null;
    this.shown = null; // the trace drawn now
    this.loading = false;
    this.jsonOpen = false;
    this.list.addEventListener("click", (event) => {
      const li = event.target.closest("li[data-request-id]");
      if (li) this.open(li.dataset.requestId);
    });
    this.list.addEventListener("keydown", (event) => {
      const li = event.target.closest("li[data-request-id]");
      if (li && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        this.open(li.dataset.requestId);
      }
    });
  }

  seed(traces) {
    for (const trace of traces || []) this.addFinished(trace, false);
    this.renderList();
  }

  addFinished(trace, render = true) {
    if (!trace || !trace.request_id) return;
    const id = String(trace.request_id);
    this.finished = this.finished.filter((t) => String(t.request_id) !== id);
    this.finished.unshift(trace);
    if (this.finished.length > KEEP) this.finished.length = KEEP;
    this.live.delete(id);
    if (render) {
      this.renderList();
      if (this.selected === id) this.draw(trace);
    }
  }

  /** On each snapshot: the in-flight turns, and a refresh of a live trace being shown. */
  update(requests) {
    this.live = new Map((requests || []).map((r) => [String(r.request_id), r]));
    this.renderList();
    if (this.selected && this.shown && this.shown.state !== "finished") this.fetch(this.selected, false);
  }

  renderList() {
    const order = [];
    const seen = new Set();
    const item = (trace, live) => {
      const id = String(trace.request_id);
      if (seen.has(id)) return;
      seen.add(id);
      let li = this.items.get(id);
      if (!li) {
        li = h("li", {dataset: {requestId: id}, tabindex: "0"},
          h("span", {class: "trace-state"}), h("span", {class: "trace-id mono"}),
          h("span", {class: "trace-meta"}));
        this.items.set(id, li);
      }
      const [state, rid, meta] = li.children;
      const label = live ? trace.state : trace.status || trace.state || "finished";
      setText(state, label);
      setAttr(state, "data-state", label);
      setText(rid, id);
      const bits = [trace.tenant, live ? `${ms(trace.age_ms)} so far` : ms(trace.age_ms)];
      if (!live && trace.started) bits.unshift(clock(trace.started).slice(0, 8));
      setText(meta, bits.filter(Boolean).join(" · "));
      li.classList.toggle("live", live);
      li.classList.toggle("selected", id === this.selected);
      order.push(li);
    };
    for (const r of this.live.values()) item(r, true);
    for (const t of this.finished) item(t, false);
    for (const id of [...this.items.keys()]) if (!seen.has(id)) this.items.delete(id);
    reorder(this.list, order);
    setText(this.count, `${num(this.live.size)} in flight · ${num(this.finished.length)} recent`);
  }

  open(id) {
    this.selected = String(id);
    this.shown = null;
    this.renderList();
    const known = this.finished.find((t) => String(t.request_id) === this.selected);
    if (known && Array.isArray(known.spans)) this.draw(known);
    else replace(this.view, h("p", {class: "muted"}, `loading trace ${this.selected}…`));
    this.fetch(this.selected, true);
  }

  async fetch(id, fresh) {
    if (this.loading && !fresh) return;
    this.loading = true;
    try {
      const trace = await get(`/v1/admin/traces/${encodeURIComponent(id)}`);
      if (this.selected === id) this.draw(trace);
    } catch (error) {
      if (this.selected !== id) return;
      const gone = error instanceof ApiError && error.status === 404;
      if (this.shown && gone) {
        this.shown = {...this.shown, state: "finished"}; // aged out: stop refreshing
        return;
      }
      replace(this.view, h("p", {class: "error"}, gone ? `no trace for ${id} (it is neither in flight nor recent)` : error.message));
    } finally {
      this.loading = false;
    }
  }

  draw(trace) {
    this.shown = trace;
    const spans = Array.isArray(trace.spans) ? trace.spans : [];
    const end = Math.max(trace.age_ms || 0, ...spans.map((s) => s.end_ms || 0));
    const total = end > 0 ? end : 1;
    const live = trace.state !== "finished";
    const header = h("dl", {class: "trace-header stats"},
      ...field("request", trace.request_id), ...field("tenant", `${trace.tenant ?? "–"}${trace.tier ? ` (${trace.tier})` : ""}`),
      ...field("model", trace.model), ...field("state", trace.state),
      ...field("status", trace.status ?? (live ? "in flight" : "–")), ...field("finish reason", trace.finish_reason ?? "–"),
      ...field("TTFT", ms(trace.ttft_ms)), ...field("total", `${ms(end)}${live ? " so far" : ""}`),
      ...field("tokens", `${num(trace.prompt_tokens)} prompt · ${num(trace.generated_tokens)} generated`),
      ...field("started", trace.started ? clock(trace.started) : "–"));
    const pre = h("pre", {class: "trace-json"}, JSON.stringify(trace, null, 2));
    pre.hidden = !this.jsonOpen;
    const toggle = h("button", {
      type: "button", class: "small trace-json-toggle", "aria-expanded": String(this.jsonOpen),
      onclick: () => {
        this.jsonOpen = !this.jsonOpen;
        pre.hidden = !this.jsonOpen;
        toggle.setAttribute("aria-expanded", String(this.jsonOpen));
        toggle.textContent = this.jsonOpen ? "hide JSON" : "JSON";
      },
    }, this.jsonOpen ? "hide JSON" : "JSON");
    const rows = spans.map((span) => spanRow(span, total));
    const axis = h("div", {class: "axis-row", "aria-hidden": "true"},
      h("span"), h("span"), h("span"),
      h("div", {class: "span-track axis"}, [0, 0.25, 0.5, 0.75, 1].map((f) => {
        const tick = h("span", {class: "axis-tick"}, f === 0 ? "0" : ms(total * f));
        tick.style.left = `${f * 100}%`;
        return tick;
      })));
    const waterfall = h("div", {class: "waterfall"},
      h("div", {class: "waterfall-head"}, h("span", null, "span"), h("span", null, "actor"),
        h("span", {class: "num"}, "ms"), h("span", null, "")),
      axis, rows.length ? rows : h("p", {class: "muted"}, "no spans yet"));
    replace(this.view,
      h("div", {class: "trace-title"}, h("h3", null, live ? "Live trace" : "Trace"),
        live ? h("span", {class: "badge badge-live"}, "live") : null, toggle),
      header, waterfall, pre);
  }
}

function field(label, value) {
  return [h("dt", null, label), h("dd", null, value === null || value === undefined ? "–" : String(value))];
}

function spanRow(span, total) {
  const start = Math.max(0, span.start_ms || 0);
  const duration = Math.max(0, span.duration_ms ?? (span.end_ms || 0) - start);
  const extra = Object.entries(span).filter(([k]) => !SPAN_FIELDS.has(k));
  const bar = h("div", {class: duration === 0 ? "span-bar tick" : "span-bar"});
  bar.style.left = `${Math.min(100, (start / total) * 100)}%`;
  if (duration > 0) bar.style.width = `${Math.max(0.3, Math.min(100 - (start / total) * 100, (duration / total) * 100))}%`;
  const kind = ENGINE_SPANS.has(span.name) ? "engine" : span.path === "/http" ? "http" : "actor";
  const extraText = extra.map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  return h("div", {
    class: `span span-${kind}`, dataset: {span: String(span.name)},
    title: `${span.name} at ${span.path}: ${ms(start)} → ${ms(start + duration)}${extraText ? ` (${extraText})` : ""}`,
  },
  h("span", {class: "span-name"}, String(span.name), extraText ? h("span", {class: "span-extra"}, ` ${extraText}`) : null),
  h("span", {class: "span-path mono"}, String(span.path ?? "")),
  h("span", {class: "span-dur num"}, duration === 0 ? "·" : num(duration, duration < 10 ? 2 : 1)),
  h("div", {class: "span-track"}, bar));
}
