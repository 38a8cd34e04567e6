// The event timeline: newest first, at most MAX in the DOM, coloured by severity,
// filtered by text (kind or path) and by kind checkboxes; "gap" lines for skipped items.

import {h, setText} from "/common/static/dom.js";
import {brief, clock, describePlan, num} from "./format.js";

const MAX = 1000;

const SEVERITY = {
  actor_crashed: "bad", escalated: "bad", actor_killed: "bad",
  restart: "warn", fault_injected: "warn", fault_cleared: "warn", preempted: "warn",
  requeued: "warn", request_aborted: "warn",
  rate_limited: "refusal", overloaded: "refusal", moderation_blocked: "refusal",
  actor_passivated: "info", conversation_titled: "info",
};

const s = (v) => (v === null || v === undefined ? "" : String(v));

function summary(kind, d) {
  d = d && typeof d === "object" ? d : {};
  switch (kind) {
    case "actor_crashed": {
      const f = d.failure || {};
      return `${s(d.actor_class)}: ${s(f.type || d.reason)}${f.message ? `: ${f.message}` : ""}`;
    }
    case "actor_killed":
    case "actor_passivated":
      return `${s(d.actor_class)}: ${s(d.reason)}`;
    case "restart":
      return `${s(d.reason)} · backoff ${num(d.delay, 2)} s · ${num(d.restarts_in_window)} in window`;
    case "escalated":
      return `child ${s(d.child)}: ${s(d.reason)}${d.message ? ` — ${d.message}` : ""}`;
    case "fault_injected":
      return describePlan(d);
    case "fault_cleared":
      return "plan cleared";
    case "rate_limited":
      return `tenant ${s(d.tenant)} (${s(d.tier)}): ${s(d.reason)} · retry after ${num(d.retry_after, 1)} s`;
    case "overloaded":
      return `${s(d.request_id)} · queue ${num(d.queue_depth)} · retry after ${num(d.retry_after, 1)} s`;
    case "moderation_blocked":
      return `${s(d.request_id)} (${s(d.where)}): ${Array.isArray(d.categories) ? d.categories.join(", ") : brief(d.categories)}`;
    case "preempted":
      return `${num(d.count)} sequence${d.count === 1 ? "" : "s"} preempted`;
    case "requeued":
      return Array.isArray(d.requests) ? `${d.requests.length} requests continued: ${brief(d.requests.join(", "), 100)}`
        : `${num(d.requests)} requests continued`;
    case "request_aborted":
      return `${s(d.request_id)} by ${s(d.by)}`;
    case "conversation_titled":
      return `"${s(d.title)}" (${s(d.source)})`;
    default:
      return brief(d);
  }
}

export class EventsPanel {
  constructor({list, filter, kinds, count}) {
    this.list = list;
    this.filter = filter;
    this.kindsBox = kinds;
    this.countEl = count;
    this.boxes = new Map(); // kind -> checkbox
    this.lastSeq = 0;
    this.pid = null;
    for (const kind of Object.keys(SEVERITY)) this.checkbox(kind);
    this.filter.addEventListener("input", () => this.applyFilter());
  }

  checkbox(kind) {
    if (this.boxes.has(kind)) return;
    const box = h("input", {type: "checkbox", checked: true, dataset: {kind}, value: kind});
    box.addEventListener("change", () => this.applyFilter());
    this.boxes.set(kind, box);
    this.kindsBox.appendChild(h("label", {class: `kind-chip sev-${SEVERITY[kind] || "info"}`}, box, kind.replaceAll("_", " ")));
  }

  /** hello: the backlog, oldest first. A new worker pid restarts the seq numbering. */
  seed(events, pid) {
    if (pid !== this.pid) {
      if (this.pid !== null) this.note(`the server's worker changed (pid ${pid}); seq numbering restarts`);
      this.pid = pid;
      this.lastSeq = 0;
    }
    const fresh = (events || []).filter((e) => typeof e.seq !== "number" || e.seq > this.lastSeq);
    const fragment = document.createDocumentFragment();
    for (const event of fresh.reverse()) fragment.appendChild(this.item(event));
    this.list.insertBefore(fragment, this.list.firstChild);
    for (const event of fresh) if (typeof event.seq === "number") this.lastSeq = Math.max(this.lastSeq, event.seq);
    this.trim();
  }

  add(event) {
    if (typeof event.seq === "number") {
      if (event.seq <= this.lastSeq) return; // already shown (a reconnect's backlog)
      this.lastSeq = event.seq;
    }
    this.list.insertBefore(this.item(event), this.list.firstChild);
    this.trim();
  }

  gap(skipped) {
    this.note(`${num(skipped)} updates skipped (the console fell behind)`, "gap");
  }

  note(text, kind = "note") {
    const li = h("li", {class: `event ${kind}`, dataset: {kind, path: ""}},
      h("span", {class: "event-time mono"}, clock(Date.now() / 1000)), h("span", {class: "event-text"}, text));
    this.list.insertBefore(li, this.list.firstChild);
    this.trim();
  }

  item(event) {
    const kind = s(event.kind);
    const path = s(event.path);
    this.checkbox(kind);
    const detail = summary(kind, event.detail);
    const li = h("li", {
      class: `event sev-${SEVERITY[kind] || "info"}`, dataset: {kind, path},
      title: brief(event.detail, 2000),
    },
    h("span", {class: "event-time mono"}, clock(event.time)),
    h("span", {class: "event-kind"}, kind),
    h("span", {class: "event-path mono"}, path),
    h("span", {class: "event-detail"}, detail));
    li.hidden = !this.matches(li);
    return li;
  }

  trim() {
    while (this.list.childElementCount > MAX) this.list.lastElementChild.remove();
    this.updateCount();
  }

  matches(li) {
    const kind = li.dataset.kind;
    const box = this.boxes.get(kind);
    if (box && !box.checked) return false;
    const needle = this.filter.value.trim().toLowerCase();
    if (!needle) return true;
    if (kind === "gap" || kind === "note") return true;
    return kind.toLowerCase().includes(needle) || li.dataset.path.toLowerCase().includes(needle);
  }

  applyFilter() {
    for (const li of this.list.children) li.hidden = !this.matches(li);
    this.updateCount();
  }

  updateCount() {
    const total = this.list.childElementCount;
    let shown = 0;
    for (const li of this.list.children) if (!li.hidden) shown += 1;
    setText(this.countEl, shown === total ? `${num(total)}` : `${num(shown)} of ${num(total)}`);
  }
}
