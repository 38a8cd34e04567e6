// In-flight requests (snapshot.requests): one row per turn, updated in place; the abort
// button asks in a <dialog> and POSTs /v1/admin/requests/{id}/abort; a click elsewhere
// on the row opens the turn's trace.

import {post} from "./api.js";
import {confirmWith} from "./dialogs.js";
import {h, reorder, setAttr, setText} from "/common/static/dom.js";
import {ms, num} from "./format.js";

export class RequestsTable {
  constructor({table, empty, count, result, dialog, onOpenTrace}) {
    this.tbody = table.tBodies[0];
    this.empty = empty;
    this.count = count;
    this.result = result;
    this.dialog = dialog;
    this.onOpenTrace = onOpenTrace;
    this.rows = new Map(); // request_id -> {tr, cells}
    this.tbody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-request-id]");
      if (!tr) return;
      if (event.target.closest("button.abort")) this.abort(tr.dataset.requestId);
      else this.onOpenTrace(tr.dataset.requestId);
    });
  }

  update(requests) {
    const list = Array.isArray(requests) ? requests : [];
    const seen = new Set();
    const order = [];
    for (const request of list) {
      const id = String(request.request_id);
      if (seen.has(id)) continue;
      seen.add(id);
      order.push(this.row(id, request).tr);
    }
    for (const id of [...this.rows.keys()]) if (!seen.has(id)) this.rows.delete(id);
    reorder(this.tbody, order);
    this.empty.hidden = order.length > 0;
    setText(this.count, `${num(order.length)} in flight`);
  }

  row(id, r) {
    let row = this.rows.get(id);
    if (!row) {
      const cells = {
        id: h("td", {class: "request-id mono"}), tenant: h("td"), tier: h("td"), model: h("td"),
        state: h("td", {class: "state"}), prompt: h("td", {class: "num"}),
        generated: h("td", {class: "num"}), age: h("td", {class: "num"}), ttft: h("td", {class: "num"}),
      };
      const button = h("button", {type: "button", class: "abort small danger", title: `abort ${id}`}, "abort");
      const tr = h("tr", {dataset: {requestId: id}, class: "clickable", title: "open this turn's trace"},
        cells.id, cells.tenant, cells.tier, cells.model, cells.state, cells.prompt, cells.generated,
        cells.age, cells.ttft, h("td", {class: "actions"}, button));
      row = {tr, cells};
      this.rows.set(id, row);
    }
    const {cells} = row;
    setText(cells.id, id);
    setAttr(cells.id, "title", id);
    setText(cells.tenant, r.tenant ?? "–");
    setText(cells.tier, r.tier ?? "–");
    setText(cells.model, r.model ?? "–");
    setText(cells.state, r.state ?? "");
    setAttr(cells.state, "data-state", r.state ?? "");
    setText(cells.prompt, num(r.prompt_tokens));
    setText(cells.generated, num(r.generated_tokens));
    setText(cells.age, ms(r.age_ms));
    setText(cells.ttft, ms(r.ttft_ms));
    return row;
  }

  async abort(id) {
    const row = this.rows.get(id);
    const tenant = row ? row.cells.tenant.textContent : "";
    const ok = await confirmWith(this.dialog,
      `Abort request ${id}${tenant ? ` (tenant ${tenant})` : ""}? Its stream ends now with ` +
      `finish_reason "abort"; what was generated so far is stored as incomplete.`);
    if (!ok) return;
    this.show("pending", `aborting ${id}…`);
    try {
      await post(`/v1/admin/requests/${encodeURIComponent(id)}/abort`, {});
      this.show("ok", `aborted ${id}`);
    } catch (error) {
      this.show("error", `could not abort ${id}: ${error.message}`);
    }
  }

  show(kind, text) {
    this.result.dataset.kind = kind;
    this.result.textContent = text;
  }
}
