// The process table: every actor of the snapshot's tree, one row each (kept and updated
// in place), processed/s from the delta between consecutive snapshots, sortable,
// filterable; a click loads the actor's detail.

import {get, withQuery} from "./api.js";
import {h, reorder, replace, setAttr, setText} from "/common/static/dom.js";
import {brief, dateTime, num} from "./format.js";

const NUMERIC = new Set(["mailbox_depth", "rate", "failed", "restarts"]);

function flatten(node, out = []) {
  out.push(node);
  for (const child of node.children || []) flatten(child, out);
  return out;
}

export class ProcessTable {
  constructor({table, filter, count, detail}) {
    this.tbody = table.tBodies[0];
    this.headers = [...table.tHead.querySelectorAll("th[data-sort]")];
    this.filterInput = filter;
    this.countEl = count;
    this.detailEl = detail;
    this.rows = new Map(); // path -> {tr, cells, data}
    this.previous = new Map(); // path -> processed, at the previous snapshot
    this.previousTime = null;
    this.sort = null; // {key, dir}; null: tree order
    this.selected = null;
    this.detailLoading = false;
    this.order = [];
    for (const th of this.headers) {
      th.tabIndex = 0;
      th.addEventListener("click", () => this.sortBy(th.dataset.sort));
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.sortBy(th.dataset.sort);
        }
      });
    }
    this.filterInput.addEventListener("input", () => this.layout());
    this.tbody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-path]");
      if (tr) this.select(tr.dataset.path);
    });
  }

  update(snapshot) {
    const nodes = flatten(snapshot.tree);
    const dt = this.previousTime === null ? null : snapshot.time - this.previousTime;
    const current = new Map();
    for (const node of nodes) {
      current.set(node.path, node.processed);
      const before = this.previous.get(node.path);
      let rate = null;
      if (dt && dt > 0 && typeof node.processed === "number" && typeof before === "number") {
        // A restarted actor counts from zero again: its count is then the delta.
        const delta = node.processed >= before ? node.processed - before : node.processed;
        rate = delta / dt;
      }
      this.row(node, rate);
    }
    for (const path of [...this.rows.keys()]) {
      if (!current.has(path)) this.rows.delete(path);
    }
    this.previous = current;
    this.previousTime = snapshot.time;
    this.order = nodes.map((node) => node.path);
    this.layout();
    if (this.selected) this.loadDetail(this.selected, false);
  }

  row(node, rate) {
    let row = this.rows.get(node.path);
    if (!row) {
      const cells = {
        path: h("td", {class: "path"}), actor_class: h("td"), state: h("td"),
        mailbox_depth: h("td", {class: "num"}), rate: h("td", {class: "num"}),
        failed: h("td", {class: "num"}), restarts: h("td", {class: "num"}),
      };
      cells.stateBadge = h("span", {class: "state-badge"});
      cells.state.appendChild(cells.stateBadge);
      const tr = h("tr", {dataset: {path: node.path}, tabindex: "0"},
        cells.path, cells.actor_class, cells.state, cells.mailbox_depth, cells.rate,
        cells.failed, cells.restarts);
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter") this.select(node.path);
      });
      row = {tr, cells};
      this.rows.set(node.path, row);
    }
    row.data = {
      path: node.path, actor_class: node.actor_class || "", state: node.state || "",
      mailbox_depth: node.mailbox_depth ?? -1, rate: rate ?? -1,
      failed: node.failed ?? 0, restarts: node.restarts ?? 0,
    };
    const {cells} = row;
    setText(cells.path, node.path);
    setAttr(cells.path, "title", node.path);
    setText(cells.actor_class, node.actor_class);
    setText(cells.stateBadge, node.state);
    setAttr(cells.stateBadge, "data-state", node.state);
    const depth = node.mailbox_depth;
    setText(cells.mailbox_depth, depth === null || depth === undefined ? "–" : num(depth));
    setAttr(cells.mailbox_depth, "title", node.mailbox_capacity ? `capacity ${node.mailbox_capacity}` : null);
    setText(cells.rate, rate === null ? "–" : num(rate, rate < 10 ? 1 : 0));
    setText(cells.failed, num(node.failed ?? 0));
    cells.failed.classList.toggle("bad", node.failed > 0);
    setText(cells.restarts, num(node.restarts ?? 0));
    cells.restarts.classList.toggle("warn", node.restarts > 0);
    row.tr.classList.toggle("selected", node.path === this.selected);
  }

  sortBy(key) {
    if (this.sort && this.sort.key === key) {
      this.sort = this.sort.dir === "desc" ? {key, dir: "asc"} : null;
    } else {
      this.sort = {key, dir: NUMERIC.has(key) ? "desc" : "asc"};
    }
    for (const th of this.headers) {
      const dir = this.sort && this.sort.key === th.dataset.sort ? this.sort.dir : null;
      setAttr(th, "aria-sort", dir ? (dir === "asc" ? "ascending" : "descending") : null);
      setAttr(th, "data-dir", dir);
    }
    this.layout();
  }

  layout() {
    const needle = this.filterInput.value.trim().toLowerCase();
    let rows = this.order.map((path) => this.rows.get(path)).filter(Boolean);
    const total = rows.length;
    if (needle) rows = rows.filter((row) => row.data.path.toLowerCase().includes(needle));
    if (this.sort) {
      const {key, dir} = this.sort;
      const sign = dir === "asc" ? 1 : -1;
      const index = new Map(this.order.map((path, i) => [path, i]));
      rows.sort((a, b) => {
        const x = a.data[key];
        const y = b.data[key];
        const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return c * sign || index.get(a.data.path) - index.get(b.data.path);
      });
    }
    reorder(this.tbody, rows.map((row) => row.tr));
    setText(this.countEl, needle ? `${num(rows.length)} of ${num(total)} actors` : `${num(total)} actors`);
  }

  select(path) {
    this.selected = path;
    for (const [p, row] of this.rows) row.tr.classList.toggle("selected", p === path);
    this.detailEl.hidden = false;
    replace(this.detailEl, this.detailHead(path), h("p", {class: "muted"}, "loading…"));
    this.loadDetail(path, true);
  }

  close() {
    this.selected = null;
    this.detailEl.hidden = true;
    this.detailEl.replaceChildren();
    for (const row of this.rows.values()) row.tr.classList.remove("selected");
  }

  detailHead(path) {
    return h("div", {class: "detail-head"},
      h("h3", null, path),
      h("button", {type: "button", class: "small", onclick: () => this.close()}, "close"));
  }

  async loadDetail(path, fresh) {
    if (this.detailLoading && !fresh) return;
    this.detailLoading = true;
    let content;
    try {
      const detail = await get(withQuery("/v1/admin/actors/detail", {path}));
      content = renderDetail(detail);
    } catch (error) {
      content = [h("p", {class: "error"}, error.message)];
    } finally {
      this.detailLoading = false;
    }
    if (this.selected !== path) return;
    const keep = this.detailEl.querySelector("details[open]") !== null;
    replace(this.detailEl, this.detailHead(path), content);
    if (keep) this.detailEl.querySelectorAll("details").forEach((d) => { d.open = true; });
  }
}

const SHOWN = ["actor_class", "kind", "state", "mailbox_depth", "mailbox_capacity",
  "processed", "failed", "restarts", "exit_reason"];
const SKIP = new Set(["path", "name", "children", "last_failure", ...SHOWN]);

function value(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return num(v, Number.isInteger(v) ? 0 : 2);
  if (typeof v === "object") return brief(v, 240);
  return String(v);
}

function renderDetail(detail) {
  const node = detail.node || {};
  const stats = h("dl", {class: "stats"});
  const add = (key, v) => stats.append(h("dt", null, key.replaceAll("_", " ")), h("dd", null, value(v)));
  for (const key of SHOWN) if (key in node) add(key, node[key]);
  for (const [key, v] of Object.entries(node)) {
    if (SKIP.has(key)) continue;
    if (key === "intensity" && v) {
      add("intensity", `${v.restarts_in_window}/${v.max_restarts} in ${v.period}s, ${v.total_restarts} total`);
    } else add(key, v);
  }
  add("current message", detail.current_message ?? "idle");
  const out = [stats];
  const failure = node.last_failure;
  if (failure) {
    out.push(h("div", {class: "failure"},
      h("span", {class: "failure-label"}, "last failure"),
      h("div", {class: "failure-summary"}, h("span", {class: "failure-type"}, String(failure.type)), ": ", String(failure.message ?? "")),
      Array.isArray(failure.traceback) && failure.traceback.length
        ? h("details", {class: "traceback"}, h("summary", null, "traceback"),
          h("ol", null, failure.traceback.map((line) => h("li", null, String(line)))))
        : null));
  }
  const history = detail.restart_history || [];
  out.push(h("h4", null, `Restart history (${history.length})`));
  if (history.length) {
    out.push(h("table", {class: "data compact"},
      h("thead", null, h("tr", null, ["time", "child", "reason", "action"].map((t) => h("th", null, t)))),
      h("tbody", null, history.slice().reverse().map((entry) => h("tr", null,
        h("td", {class: "nowrap"}, dateTime(entry.wall)), h("td", null, String(entry.child ?? "")),
        h("td", null, String(entry.reason ?? "")),
        h("td", {dataset: {action: String(entry.action ?? "")}}, String(entry.action ?? "")))))));
  } else out.push(h("p", {class: "muted"}, "No restarts recorded."));
  const watchers = detail.watchers || [];
  out.push(h("h4", null, `Watchers (${watchers.length})`));
  out.push(watchers.length
    ? h("ul", {class: "watchers"}, watchers.map((w) => h("li", null, String(w))))
    : h("p", {class: "muted"}, "Nobody watches this actor."));
  return out;
}
