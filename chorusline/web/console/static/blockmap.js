// The KV block map: one cell per block (u in use, c cached prefix, f free). Up to
// DOM_LIMIT blocks it is a grid of small elements made once and updated only where a
// block changed (hover shows a title); above that it is drawn on one <canvas> with a
// mousemove readout, so a big cache never means tens of thousands of DOM nodes.

import {h, setText} from "/common/static/dom.js";
import {num} from "./format.js";

const DOM_LIMIT = 2048;
const NAMES = {u: "in use", c: "cached prefix", f: "free"};
const COLOURS = {u: "#2f6fdb", c: "#e0a526", f: "#dfe3ea"};

export class BlockMap {
  constructor({container, readout, counts}) {
    this.container = container;
    this.readout = readout;
    this.counts = counts; // {u, c, f} elements
    this.mode = null;
    this.cells = [];
    this.states = "";
    this.refs = [];
    this.canvas = null;
    this.cell = 6;
    this.columns = 1;
  }

  update(map) {
    if (!map || typeof map.states !== "string") {
      this.container.classList.add("stale");
      setText(this.readout, "no block map (the GPU worker is restarting)");
      return;
    }
    this.container.classList.remove("stale");
    const states = map.states;
    const refs = Array.isArray(map.refs) ? map.refs : [];
    const mode = states.length > DOM_LIMIT ? "canvas" : "dom";
    if (mode !== this.mode || (mode === "dom" && states.length !== this.cells.length)) {
      this.mode = mode;
      this.states = "";
      this.refs = [];
      if (mode === "dom") this.buildCells(states.length);
      else this.buildCanvas();
    }
    this.blockSize = map.block_size;
    if (mode === "dom") this.updateCells(states, refs);
    this.states = states;
    this.refs = refs;
    if (mode === "canvas") this.draw();
    const count = {u: 0, c: 0, f: 0};
    for (const s of states) if (s in count) count[s] += 1;
    for (const key of Object.keys(count)) setText(this.counts[key], num(count[key]));
    if (!this.hovering) {
      setText(this.readout, `${num(states.length)} blocks of ${num(map.block_size)} tokens — hover a block`);
    }
  }

  describe(i) {
    const state = this.states[i];
    return `block ${i}: ${NAMES[state] || state}, ${num(this.refs[i] ?? 0)} reference${this.refs[i] === 1 ? "" : "s"}`;
  }

  buildCells(n) {
    this.canvas = null;
    this.cells = [];
    const fragment = document.createDocumentFragment();
    for (let i = 0; i < n; i += 1) {
      const cell = h("span", {class: "block"});
      this.cells.push(cell);
      fragment.appendChild(cell);
    }
    this.container.className = "block-map block-map-dom";
    this.container.replaceChildren(fragment);
    this.container.onmouseover = (event) => {
      const index = this.cells.indexOf(event.target);
      if (index >= 0) {
        this.hovering = true;
        setText(this.readout, this.describe(index));
      }
    };
    this.container.onmouseleave = () => {
      this.hovering = false;
    };
  }

  updateCells(states, refs) {
    for (let i = 0; i < states.length; i += 1) {
      if (states[i] === this.states[i] && refs[i] === this.refs[i]) continue;
      const cell = this.cells[i];
      cell.className = `block block-${states[i]}`;
      cell.title = `block ${i}: ${NAMES[states[i]] || states[i]}, refs ${refs[i] ?? 0}`;
    }
  }

  buildCanvas() {
    this.cells = [];
    this.canvas = h("canvas", {class: "block-canvas", role: "img", "aria-label": "KV cache block map"});
    this.container.className = "block-map block-map-canvas";
    this.container.replaceChildren(this.canvas);
    this.container.onmouseover = null;
    this.canvas.addEventListener("mousemove", (event) => {
      const rect = this.canvas.getBoundingClientRect();
      const col = Math.floor((event.clientX - rect.left) / this.cell);
      const row = Math.floor((event.clientY - rect.top) / this.cell);
      const index = row * this.columns + col;
      if (col < this.columns && index >= 0 && index < this.states.length) {
        this.hovering = true;
        const text = this.describe(index);
        setText(this.readout, text);
        this.canvas.title = text;
      }
    });
    this.canvas.addEventListener("mouseleave", () => {
      this.hovering = false;
    });
    if (!this.observer) {
      this.observer = new ResizeObserver(() => this.draw());
      this.observer.observe(this.container);
    }
  }

  draw() {
    if (!this.canvas) return;
    const n = this.states.length;
    const width = this.container.clientWidth;
    if (!width || !n) return;
    // Cells as big as fit in about 320px of height, between 3 and 10px.
    this.cell = Math.max(3, Math.min(10, Math.floor(Math.sqrt((width * 320) / n))));
    this.columns = Math.max(1, Math.floor(width / this.cell));
    const rows = Math.ceil(n / this.columns);
    const ratio = window.devicePixelRatio || 1;
    const cssW = this.columns * this.cell;
    const cssH = rows * this.cell;
    if (this.canvas.width !== Math.round(cssW * ratio) || this.canvas.height !== Math.round(cssH * ratio)) {
      this.canvas.width = Math.round(cssW * ratio);
      this.canvas.height = Math.round(cssH * ratio);
      this.canvas.style.width = `${cssW}px`;
      this.canvas.style.height = `${cssH}px`;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const gap = this.cell >= 5 ? 1 : 0;
    for (const state of ["f", "c", "u"]) {
      ctx.fillStyle = COLOURS[state];
      for (let i = 0; i < n; i += 1) {
        if (this.states[i] !== state) continue;
        const x = (i % this.columns) * this.cell;
        const y = Math.floor(i / this.columns) * this.cell;
        ctx.fillRect(x, y, this.cell - gap, this.cell - gap);
      }
    }
  }
}
