// Fault injection: the form (only the fields the chosen action takes), a <dialog> that
// says exactly what will happen, the POST, and the list of active plans with clear
// buttons (DELETE /v1/admin/faults[?path=]).

import {del, post, withQuery} from "./api.js";
import {confirmWith} from "./dialogs.js";
import {h, reorder, setText} from "/common/static/dom.js";
import {describePlan, num, ordinal} from "./format.js";

export class FaultsPanel {
  constructor({form, path, action, onMessage, seconds, fraction, result, dialog, list, clearAll, datalist}) {
    Object.assign(this, {form, path, action, onMessage, seconds, fraction, result, dialog, list, datalist});
    this.items = new Map(); // path -> li
    this.knownPaths = "";
    this.action.addEventListener("change", () => this.showFields());
    this.showFields();
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    clearAll.addEventListener("click", () => this.clear(null));
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button.clear");
      const li = button && button.closest("li[data-path]");
      if (li) this.clear(li.dataset.path);
    });
  }

  showFields() {
    for (const field of this.form.querySelectorAll("[data-action]")) {
      field.hidden = field.dataset.action !== this.action.value;
    }
  }

  /** Target `path` (the tree's "fault…" buttons). */
  pick(path) {
    this.path.value = path;
    this.form.scrollIntoView({behavior: "smooth", block: "center"});
    this.path.focus({preventScroll: true});
    this.say("info", `target: ${path}`);
  }

  /** The request body and the sentence the confirmation shows, or an error string. */
  plan() {
    const path = this.path.value.trim();
    const action = this.action.value;
    if (!path.startsWith("/")) return {error: "the path must be an actor path such as /chat/conversations/conv-…"};
    const body = {path, action};
    let question;
    if (action === "crash") {
      const n = this.onMessage.value === "" ? 1 : Number(this.onMessage.value);
      if (!Number.isInteger(n) || n < 1) return {error: "on message must be a whole number, at least 1"};
      body.on_message = n;
      question = n === 1 ? `Crash ${path} on its next message?`
        : `Crash ${path} on its ${ordinal(n)} message from now?`;
    } else if (action === "delay") {
      const s = Number(this.seconds.value);
      if (this.seconds.value === "" || !Number.isFinite(s) || s < 0) return {error: "seconds must be a number, 0 or more"};
      body.seconds = s;
      question = s === 0 ? `Clear the delay on ${path}?`
        : `Delay every message to ${path} by ${s} s, until cleared?`;
    } else if (action === "drop") {
      const f = Number(this.fraction.value);
      if (this.fraction.value === "" || !Number.isFinite(f) || f < 0 || f > 1) return {error: "fraction must be between 0 and 1"};
      body.fraction = f;
      question = `Drop ${num(f * 100, 1)}% of the messages to ${path}, until cleared? (Dropped asks time out.)`;
    } else if (action === "kill") {
      question = `Kill ${path} now? It handles no further message; its supervisor decides whether it restarts.`;
    } else return {error: `unknown action ${action}`};
    return {body, question};
  }

  async submit() {
    const {body, question, error} = this.plan();
    if (error) {
      this.say("error", error);
      return;
    }
    if (!(await confirmWith(this.dialog, question))) {
      this.say("info", "cancelled: nothing was injected");
      return;
    }
    this.say("pending", "injecting…");
    try {
      const answer = await post("/v1/admin/faults", body);
      const what = body.action === "kill" ? "killed" : `${body.action} armed on`;
      this.say("ok", `${what} ${answer?.path ?? body.path}`);
      if (answer && answer.active) this.update(answer.active);
    } catch (failure) {
      this.say("error", failure.message);
    }
  }

  async clear(path) {
    this.say("pending", path ? `clearing ${path}…` : "clearing every fault…");
    try {
      const answer = await del(withQuery("/v1/admin/faults", {path}));
      const cleared = Array.isArray(answer?.cleared) ? answer.cleared.length : null;
      this.say("ok", path ? `cleared ${path}` : `cleared ${cleared === null ? "all" : num(cleared)} fault plan${cleared === 1 ? "" : "s"}`);
      if (answer && answer.active) this.update(answer.active);
    } catch (failure) {
      this.say("error", failure.message);
    }
  }

  say(kind, text) {
    this.result.dataset.kind = kind;
    this.result.textContent = text;
  }

  /** snapshot.faults: {path: plan}. */
  update(faults) {
    const entries = Object.entries(faults || {});
    const order = [];
    const seen = new Set();
    for (const [path, plan] of entries) {
      seen.add(path);
      let li = this.items.get(path);
      if (!li) {
        li = h("li", {dataset: {path}},
          h("span", {class: "fault-target mono"}, path), h("span", {class: "fault-plan"}),
          h("button", {type: "button", class: "clear small", title: `clear the plan on ${path}`}, "clear"));
        this.items.set(path, li);
      }
      setText(li.children[1], describePlan(plan));
      order.push(li);
    }
    for (const path of [...this.items.keys()]) if (!seen.has(path)) this.items.delete(path);
    if (!order.length) order.push(this.emptyItem());
    reorder(this.list, order);
  }

  emptyItem() {
    if (!this.empty) this.empty = h("li", {class: "empty"}, "No fault plans are active.");
    return this.empty;
  }

  /** Offer the tree's paths as suggestions for the path input. */
  setPaths(paths) {
    const key = paths.join("\n");
    if (key === this.knownPaths) return;
    this.knownPaths = key;
    this.datalist.replaceChildren(...paths.map((p) => h("option", {value: p})));
  }
}
