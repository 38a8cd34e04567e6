// The engine panel: uPlot charts over a 5-minute ring of snapshot samples, a strip of
// current figures, and the "GPU worker restarting" badge while engine.engine is null.

import {h, setText} from "/common/static/dom.js";
import {ms, num, percent} from "./format.js";

const WINDOW_S = 300;

// Each chart: its series, each read from a snapshot's `engine` object (null = no value).
const CHARTS = [
  {title: "Tokens / s", unit: "tok/s", series: [
    {label: "output", color: "#2f6fdb", get: (e) => e.rates?.output_tps},
    {label: "prompt", color: "#d9822b", get: (e) => e.rates?.prompt_tps},
  ]},
  {title: "Batch and queue", unit: "", series: [
    {label: "batch", color: "#2f6fdb", get: (e) => e.driver?.last_batch_size},
    {label: "running", color: "#1f9d55", get: (e) => e.engine?.num_running},
    {label: "waiting", color: "#d9822b", get: (e) => e.engine?.num_waiting},
    {label: "queue", color: "#c23b3b", get: (e) => e.driver?.queue_depth},
  ]},
  {title: "KV cache use", unit: "%", max: 100, series: [
    {label: "kv", color: "#7a4fd0", get: (e) => (typeof e.engine?.kv_usage === "number" ? e.engine.kv_usage * 100 : null)},
  ]},
  {title: "Step time", unit: "ms", series: [
    {label: "step", color: "#0f8b8d", get: (e) => e.engine?.last_step_ms},
  ]},
  {title: "TTFT (last 60 s)", unit: "ms", series: [
    {label: "p50", color: "#2f6fdb", get: (e) => e.ttft_ms?.p50},
    {label: "p95", color: "#c23b3b", get: (e) => e.ttft_ms?.p95},
  ]},
];

const pad = (n) => String(n).padStart(2, "0");
const clockLabel = (t) => {
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
const clean = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

export class EnginePanel {
  constructor({charts, badge}) {
    this.container = charts;
    this.badge = badge;
    this.times = [];
    this.columns = CHARTS.map((chart) => chart.series.map(() => []));
    this.plots = [];
    this.stats = h("dl", {class: "stats engine-stats"});
    this.nowTitle = h("h3", null, "Now");
    this.statsCard = h("div", {class: "chart-card"}, this.nowTitle, this.stats);
    // One row per served model (each has its own engine); the charts show the default's.
    this.models = h("tbody");
    this.modelsCard = h("div", {class: "chart-card", id: "engine-models"}, h("h3", null, "Models"),
      h("table", {class: "engine-models"},
        h("thead", null, h("tr", null, ["model", "worker", "running / waiting", "KV", "output"]
          .map((label) => h("th", null, label)))),
        this.models));
    this.hasUPlot = typeof window.uPlot === "function";
    this.cards = CHARTS.map((chart) => {
      const body = h("div", {class: "chart-body"});
      const values = chart.series.map(() => h("span", {class: "legend-value num"}, "–"));
      const when = h("span", {class: "legend-when muted"});
      const legend = h("ul", {class: "chart-legend"}, chart.series.map((s, j) => {
        const swatch = h("span", {class: "swatch"});
        swatch.style.background = s.color;
        return h("li", null, swatch, s.label, values[j]);
      }), h("li", null, when));
      const card = h("div", {class: "chart-card"}, h("h3", null, chart.title), legend, body);
      if (!this.hasUPlot) body.appendChild(h("p", {class: "error"}, "charts unavailable (uPlot did not load)"));
      return {card, body, values, when};
    });
    this.container.replaceChildren(...this.cards.map((c) => c.card), this.statsCard,
      this.modelsCard);
    if (this.hasUPlot) {
      this.resize = new ResizeObserver(() => this.fit());
    }
  }

  makePlots() {
    CHARTS.forEach((chart, i) => {
      const body = this.cards[i].body;
      const width = Math.max(200, body.clientWidth);
      const grid = {stroke: "#e6e9ef", width: 1};
      const ticks = {stroke: "#d0d5dd", width: 1};
      const options = {
        width, height: 150,
        cursor: {drag: {x: false, y: false}, points: {size: 6}},
        legend: {show: false},
        scales: {x: {time: true}, y: chart.max ? {range: [0, chart.max]} : {range: (u, lo, hi) => [0, Math.max(1, (hi || 0) * 1.1)]}},
        axes: [
          {stroke: "#5b6472", grid, ticks, space: 70, values: (u, splits) => splits.map(clockLabel)},
          {stroke: "#5b6472", grid, ticks, size: 46,
            values: (u, splits) => splits.map((v) => num(v, v % 1 ? 1 : 0))},
        ],
        series: [{}, ...chart.series.map((s) => ({label: s.label, stroke: s.color, width: 1.5, points: {show: false}}))],
        hooks: {setCursor: [(u) => this.legend(i, u.cursor.idx)]},
      };
      this.plots[i] = new window.uPlot(options, [this.times, ...this.columns[i]], body);
      this.resize.observe(body);
    });
  }

  /** The card's legend: the hovered sample's values, or the latest ones. */
  legend(i, idx) {
    const chart = CHARTS[i];
    const at = idx === null || idx === undefined ? this.times.length - 1 : idx;
    chart.series.forEach((s, j) => {
      const v = this.columns[i][j][at];
      const text = v === null || v === undefined ? "–" : `${num(v, v < 10 && v % 1 ? 2 : 0)}${chart.unit ? ` ${chart.unit}` : ""}`;
      setText(this.cards[i].values[j], text);
    });
    setText(this.cards[i].when, at >= 0 && this.times[at] ? clockLabel(this.times[at]) : "");
  }

  fit() {
    this.plots.forEach((plot, i) => {
      const width = Math.max(200, this.cards[i].body.clientWidth);
      if (plot && Math.abs(plot.width - width) > 2) plot.setSize({width, height: 150});
    });
  }

  update(snapshot) {
    const engine = snapshot.engine || {};
    const restarting = engine.engine === null || engine.engine === undefined;
    this.badge.hidden = !restarting;
    this.times.push(snapshot.time);
    CHARTS.forEach((chart, i) => chart.series.forEach((s, j) => this.columns[i][j].push(clean(s.get(engine)))));
    const cutoff = snapshot.time - WINDOW_S;
    let drop = 0;
    while (drop < this.times.length && this.times[drop] < cutoff) drop += 1;
    if (drop) {
      this.times.splice(0, drop);
      for (const columns of this.columns) for (const column of columns) column.splice(0, drop);
    }
    if (this.hasUPlot) {
      // Created once the panel is visible, so the charts get their real width.
      if (!this.plots.length && this.container.clientWidth > 0) this.makePlots();
      this.plots.forEach((plot, i) => plot.setData([this.times, ...this.columns[i]]));
    }
    CHARTS.forEach((chart, i) => {
      const plot = this.plots[i];
      this.legend(i, plot ? plot.cursor.idx : null);
    });
    this.renderStats(engine, restarting);
    this.renderModels(snapshot.engines || {});
  }

  renderModels(engines) {
    const rows = Object.entries(engines).map(([name, m]) => {
      const e = m.engine;
      const cells = [name, e ? "running" : "restarting",
        e ? `${num(e.num_running)} / ${num(e.num_waiting)}` : "–",
        e ? percent(e.kv_usage) : "–", `${num(m.rates?.output_tps, 0)} tok/s`];
      return h("tr", {"data-model": name, class: e ? "" : "restarting"},
        cells.map((text) => h("td", null, text)));
    });
    this.models.replaceChildren(...rows);
  }

  renderStats(engine, restarting) {
    setText(this.nowTitle, engine.model ? `Now · ${engine.model}` : "Now");
    const e = engine.engine || {};
    const d = engine.driver || {};
    const rows = [
      ["output", `${num(engine.rates?.output_tps, 0)} tok/s`],
      ["prompt", `${num(engine.rates?.prompt_tps, 0)} tok/s`],
      ["steps", `${num(engine.rates?.steps_per_s, 1)} /s`],
      ["batch", `${num(d.last_batch_size)} (mean ${num(d.mean_batch_size, 1)}, max ${num(d.max_batch_size)})`],
      ["running / waiting", restarting ? "–" : `${num(e.num_running)} / ${num(e.num_waiting)}`],
      ["queue / in flight", `${num(d.queue_depth)} / ${num(d.inflight)}`],
      ["KV blocks", restarting ? "–" : `${num(e.kv_blocks_used)} / ${num(e.kv_blocks_total)} (${percent(e.kv_usage)})`],
      ["step time", restarting ? "–" : ms(e.last_step_ms)],
      ["TTFT p50 / p95", `${ms(engine.ttft_ms?.p50)} / ${ms(engine.ttft_ms?.p95)} (${num(engine.ttft_ms?.count)} turns)`],
      ["preemptions", restarting ? "–" : num(e.preemptions)],
      ["requeued / refused", `${num(d.requeued)} / ${num(d.refused)}`],
    ];
    if (this.stats.childElementCount !== rows.length * 2) {
      this.stats.replaceChildren(...rows.flatMap(([k]) => [h("dt", null, k), h("dd")]));
    }
    rows.forEach(([, v], i) => setText(this.stats.children[i * 2 + 1], v));
  }
}
