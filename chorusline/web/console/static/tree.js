// The supervision tree: one element per actor, kept across snapshots and updated in
// place (no flicker, collapsed/expanded state and open tracebacks survive). A node with
// more children than the snapshot lists gets a search box and pager that read
// /v1/admin/actors/children instead of rendering thousands of nodes.

import {get, withQuery} from "./api.js";
import {h, reorder, setAttr, setText} from "/common/static/dom.js";
import {num} from "./format.js";

const PAGE = 50;

const show = (value) => (value === null || value === undefined ? "–" : num(value));

class NodeView {
  constructor(tree, path) {
    this.tree = tree;
    this.path = path;
    this.failureKey = null;
    this.toggle = h("button", {
      type: "button", class: "toggle", "aria-label": "collapse", "aria-expanded": "true",
      onclick: () => tree.toggle(path),
    });
    this.name = h("span", {class: "node-name"});
    this.kindTag = h("span", {class: "kind"});
    this.cls = h("span", {class: "actor-class"});
    this.sup = h("span", {class: "sup"});
    this.stateBadge = h("span", {class: "state-badge"});
    this.mailbox = h("span", {class: "mailbox num"});
    this.processed = h("span", {class: "processed num"});
    this.failed = h("span", {class: "failed num"});
    this.restarts = h("span", {class: "restarts num"});
    const pick = h("button", {
      type: "button", class: "fault-pick small", title: "target this actor in the fault form",
      onclick: () => tree.onFaultPick(path),
    }, "fault…");
    this.row = h("div", {class: "node-row"},
      this.toggle,
      h("span", {class: "node-label"}, this.name, this.kindTag, this.cls, this.sup),
      this.stateBadge, this.mailbox, this.processed, this.failed, this.restarts, pick);
    this.failure = h("div", {class: "failure", hidden: true});
    this.pager = h("div", {class: "pager", hidden: true});
    this.children = h("div", {class: "children", role: "group"});
    this.el = h("div", {class: "tree-node", dataset: {path}, role: "treeitem"},
      this.row, this.failure, this.pager, this.children);
  }

  update(node) {
    setText(this.name, node.name || node.path);
    setAttr(this.name, "title", node.path);
    setText(this.kindTag, node.kind);
    setAttr(this.kindTag, "data-kind", node.kind);
    setText(this.cls, node.actor_class);
    setText(this.stateBadge, node.state);
    setAttr(this.stateBadge, "data-state", node.state);
    setAttr(this.el, "data-state", node.state);
    const depth = node.mailbox_depth;
    const capacity = node.mailbox_capacity;
    setText(this.mailbox, depth === null || depth === undefined ? "–" : `${num(depth)}/${show(capacity)}`);
    this.mailbox.classList.toggle("hot", !!capacity && depth / capacity >= 0.5);
    setText(this.processed, show(node.processed));
    setText(this.failed, show(node.failed));
    this.failed.classList.toggle("bad", node.failed > 0);
    setText(this.restarts, String(node.restarts ?? 0));
    this.restarts.classList.toggle("warn", node.restarts > 0);
    setText(this.sup, supervisorText(node));
    this.updateFailure(node.last_failure);
  }

  updateFailure(failure) {
    const key = failure ? JSON.stringify(failure) : null;
    if (key === this.failureKey) return;
    this.failureKey = key;
    this.failure.hidden = !failure;
    if (!failure) {
      this.failure.replaceChildren();
      return;
    }
    const lines = Array.isArray(failure.traceback) ? failure.traceback : [];
    const summary = h("div", {class: "failure-summary"},
      h("span", {class: "failure-type"}, String(failure.type ?? "error")), ": ",
      String(failure.message ?? ""));
    const details = lines.length
      ? h("details", {class: "traceback"},
        h("summary", null, `traceback (${lines.length} frame${lines.length === 1 ? "" : "s"})`),
        h("ol", null, lines.map((line) => h("li", null, String(line)))))
      : null;
    this.failure.replaceChildren(h("span", {class: "failure-label"}, "last failure"), summary);
    if (details) this.failure.appendChild(details);
  }

  setCollapsed(collapsed, hasChildren) {
    this.toggle.disabled = !hasChildren;
    this.toggle.classList.toggle("leaf", !hasChildren);
    setText(this.toggle, hasChildren ? (collapsed ? "▸" : "▾") : "·");
    setAttr(this.toggle, "aria-expanded", hasChildren ? String(!collapsed) : null);
    setAttr(this.toggle, "aria-label", collapsed ? "expand" : "collapse");
    this.children.hidden = collapsed;
    this.pager.hidden = collapsed || this.pager.childElementCount === 0;
    this.el.classList.toggle("collapsed", collapsed);
  }
}

function supervisorText(node) {
  if (node.kind !== "supervisor") return "";
  const parts = [];
  if (node.strategy) parts.push(node.strategy);
  const intensity = node.intensity;
  if (intensity) {
    parts.push(`${intensity.restarts_in_window}/${intensity.max_restarts} in ${intensity.period} s`);
    if (intensity.total_restarts) parts.push(`${intensity.total_restarts} total`);
  }
  if (node.max_children) parts.push(`max ${num(node.max_children)}`);
  if (node.passivated) parts.push(`${num(node.passivated)} passivated`);
  return parts.join(" · ");
}

/** Search + pager state for one node whose children are only partly listed. */
class Pager {
  constructor(tree, path) {
    this.tree = tree;
    this.path = path;
    this.mode = "busiest"; // or "page": show the fetched page instead of the snapshot's
    this.q = "";
    this.offset = 0;
    this.page = null;
    this.loading = false;
    this.error = null;
    this.timer = null;
    this.info = h("span", {class: "pager-info"});
    this.search = h("input", {
      type: "search", class: "child-search", placeholder: "search children by name",
      spellcheck: "false", "aria-label": `search the children of ${path}`,
    });
    this.search.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.go(this.search.value.trim(), 0), 250);
    });
    this.prev = h("button", {type: "button", class: "small", onclick: () => this.go(this.q, this.offset - PAGE)}, "‹ prev");
    this.next = h("button", {type: "button", class: "small", onclick: () => this.go(this.q, this.offset + PAGE)}, "next ›");
    this.busiest = h("button", {
      type: "button", class: "small",
      onclick: () => {
        this.mode = "busiest";
        this.search.value = "";
        this.q = "";
        this.offset = 0;
        this.tree.rerender();
      },
    }, "busiest");
    this.errorEl = h("span", {class: "error"});
    this.el = [this.info, this.search, this.prev, this.next, this.busiest, this.errorEl];
  }

  go(q, offset) {
    this.mode = "page";
    this.q = q;
    this.offset = Math.max(0, offset);
    this.page = null;
    this.fetch();
  }

  async fetch() {
    if (this.loading) return;
    this.loading = true;
    const wanted = {q: this.q, offset: this.offset};
    try {
      const page = await get(withQuery("/v1/admin/actors/children",
        {path: this.path, q: this.q, offset: this.offset, limit: PAGE}));
      if (wanted.q === this.q && wanted.offset === this.offset) {
        this.page = page;
        this.error = null;
      }
    } catch (error) {
      this.error = error.message;
    } finally {
      this.loading = false;
    }
    if (wanted.q !== this.q || wanted.offset !== this.offset) this.fetch();
    this.tree.rerender();
  }

  render(node) {
    const total = node.children_total;
    const shown = (node.children || []).length;
    if (this.mode === "busiest") {
      setText(this.info, `showing ${num(shown)} of ${num(total)} (the busiest)`);
    } else if (this.page) {
      const {matched, offset, children} = this.page;
      const first = children.length ? offset + 1 : 0;
      const filter = this.q ? ` matching “${this.q}”` : "";
      setText(this.info, `showing ${num(first)}–${num(offset + children.length)} of ${num(matched)}${filter} (${num(this.page.total)} in all)`);
    } else {
      setText(this.info, "loading…");
    }
    this.prev.disabled = this.mode !== "page" || this.offset === 0;
    this.next.disabled = this.mode === "page" && !!this.page && this.offset + PAGE >= this.page.matched;
    this.busiest.hidden = this.mode === "busiest";
    setText(this.errorEl, this.error || "");
  }

  children(node) {
    if (this.mode === "page") return this.page ? this.page.children : [];
    return node.children || [];
  }
}

export class TreeView {
  constructor(container, {onFaultPick}) {
    this.container = container;
    this.onFaultPick = onFaultPick;
    this.views = new Map(); // path -> NodeView
    this.pagers = new Map(); // path -> Pager
    this.collapsed = new Set(); // paths the user collapsed
    this.root = null;
    this.container.setAttribute("role", "tree");
  }

  update(root) {
    this.root = root;
    this.rerender();
    for (const pager of this.pagers.values()) {
      if (pager.mode === "page") pager.fetch(); // keep a shown page fresh
    }
  }

  rerender() {
    if (!this.root) return;
    const seen = new Set();
    const top = this.render(this.root, seen);
    reorder(this.container, [top.el]);
    for (const path of this.views.keys()) {
      if (!seen.has(path)) this.views.delete(path);
    }
    for (const path of this.pagers.keys()) {
      if (!seen.has(path)) this.pagers.delete(path);
    }
  }

  render(node, seen) {
    let view = this.views.get(node.path);
    if (!view) {
      view = new NodeView(this, node.path);
      this.views.set(node.path, view);
    }
    seen.add(node.path);
    view.update(node);
    let children = node.children || [];
    const partial = typeof node.children_total === "number" && node.children_total > children.length;
    let pager = this.pagers.get(node.path);
    if (partial && !pager) {
      pager = new Pager(this, node.path);
      this.pagers.set(node.path, pager);
    }
    if (pager && (partial || pager.mode === "page")) {
      if (view.pager.firstChild !== pager.el[0]) view.pager.replaceChildren(...pager.el);
      pager.render(node);
      children = pager.children(node);
    } else if (view.pager.firstChild) {
      view.pager.replaceChildren();
    }
    reorder(view.children, children.map((child) => this.render(child, seen).el));
    const hasChildren = children.length > 0 || view.pager.childElementCount > 0;
    view.setCollapsed(this.collapsed.has(node.path), hasChildren);
    return view;
  }

  toggle(path) {
    if (this.collapsed.has(path)) this.collapsed.delete(path);
    else this.collapsed.add(path);
    this.rerender();
  }

  expandAll() {
    this.collapsed.clear();
    this.rerender();
  }

  collapseAll() {
    for (const [path, view] of this.views) {
      if (view.children.childElementCount && path !== this.root?.path) this.collapsed.add(path);
    }
    this.rerender();
  }
}
