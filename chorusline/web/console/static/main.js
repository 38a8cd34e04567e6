// Wiring: the key form, the feed, and each feed message handed to the panels.

import {clearKey, onAuthFailure, setKey} from "./api.js";
import {BlockMap} from "./blockmap.js";
import {$, setText} from "/common/static/dom.js";
import {EnginePanel} from "./engine.js";
import {EventsPanel} from "./events.js";
import {FaultsPanel} from "./faults.js";
import {startFeed} from "./feed.js";
import {clock, num} from "./format.js";
import {ProcessTable} from "./processes.js";
import {RequestsTable} from "./requests.js";
import {TracePanel} from "./trace.js";
import {TreeView} from "./tree.js";

const FEED_URL = "/v1/admin/events?interval=1";

const login = $("#login");
const keyForm = $("#key-form");
const keyInput = $("#key-input");
const keyError = $("#key-error");
const statusEl = $("#status");
const main = $("#console");

const faults = new FaultsPanel({
  form: $("#fault-form"), path: $("#fault-path"), action: $("#fault-action"),
  onMessage: $("#fault-on-message"), seconds: $("#fault-seconds"), fraction: $("#fault-fraction"),
  result: $("#fault-result"), dialog: $("#fault-confirm"), list: $("#active-faults"),
  clearAll: $("#faults-clear-all"), datalist: $("#fault-paths"),
});
const tree = new TreeView($("#tree"), {onFaultPick: (path) => faults.pick(path)});
const processes = new ProcessTable({
  table: $("#process-table"), filter: $("#process-filter"), count: $("#process-count"),
  detail: $("#process-detail"),
});
const engine = new EnginePanel({charts: $("#engine-charts"), badge: $("#engine-worker-badge")});
const blocks = new BlockMap({
  container: $("#block-map"), readout: $("#block-readout"),
  counts: {u: $("#block-count-u"), c: $("#block-count-c"), f: $("#block-count-f")},
});
const traces = new TracePanel({list: $("#recent-traces"), view: $("#trace-view"), count: $("#trace-count")});
const requests = new RequestsTable({
  table: $("#request-table"), empty: $("#requests-empty"), count: $("#request-count"),
  result: $("#requests-result"), dialog: $("#abort-confirm"),
  onOpenTrace: (id) => {
    traces.open(id);
    $("#panel-trace").scrollIntoView({behavior: "smooth", block: "start"});
  },
});
const events = new EventsPanel({
  list: $("#events-list"), filter: $("#events-filter"), kinds: $("#events-kinds"), count: $("#events-count"),
});

$("#tree-expand-all").addEventListener("click", () => tree.expandAll());
$("#tree-collapse-all").addEventListener("click", () => tree.collapseAll());
faults.update({});

let feed = null;

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function showLogin(message) {
  if (feed) feed.stop();
  feed = null;
  clearKey();
  keyError.textContent = message || "";
  login.hidden = false;
  keyInput.value = "";
  keyInput.focus();
}

function authFailed(error) {
  setStatus("error", `refused (${error.status})`);
  showLogin(error.message);
}

onAuthFailure(authFailed);

function flattenPaths(node, out = []) {
  out.push(node.path);
  for (const child of node.children || []) flattenPaths(child, out);
  return out;
}

function handle(kind, data) {
  if (kind === "hello") {
    setText($("#system-info"), [data.system, data.model, data.worker_pid ? `pid ${data.worker_pid}` : null]
      .filter(Boolean).join(" · "));
    events.seed(data.events, data.worker_pid);
    traces.seed(data.traces);
  } else if (kind === "snapshot") {
    snapshot(data);
  } else if (kind === "event") {
    events.add(data);
  } else if (kind === "trace") {
    traces.addFinished(data);
  } else if (kind === "gap") {
    events.gap(data.skipped);
  }
}

function snapshot(data) {
  const steps = [
    () => data.tree && tree.update(data.tree),
    () => data.tree && processes.update(data),
    () => data.tree && faults.setPaths(flattenPaths(data.tree)),
    () => engine.update(data),
    () => blocks.update(data.engine ? data.engine.block_map : null),
    () => requests.update(data.requests),
    () => traces.update(data.requests),
    () => faults.update(data.faults),
  ];
  for (const step of steps) {
    try {
      step();
    } catch (error) {
      console.error("console: a panel failed to update", error);
    }
  }
  const letters = data.dead_letters;
  setText($("#dead-letters"), letters ? `${num(letters.count)} dead letters` : "");
  setText($("#snapshot-time"), `snapshot ${clock(data.time)}`);
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) {
    keyError.textContent = "enter an admin API key";
    return;
  }
  keyInput.value = "";
  keyError.textContent = "";
  setKey(key);
  login.hidden = true;
  main.hidden = false;
  if (feed) feed.stop();
  feed = startFeed({url: FEED_URL, onMessage: handle, onStatus: setStatus, onAuthError: authFailed});
});

keyInput.focus();
