// node --test suite for spalloc_nb/widgets/boardmap.js, run in jsdom against a fake model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { JSDOM } from "jsdom";
import { loadWidget } from "./esm.js";
import { fakeModel } from "./fakes.js";

// The module as anywidget gets it: boardmap.js joined with shared.js.
const mod = await loadWidget("boardmap.js");

// Same layout rule as boardmap.py's hex_cell (the spalloc-machine text map's).
function cell(x, y, z) {
  return [2 * x - y + (z === 1 ? 1 : 0), -(3 * y + z)];
}

function machine(w, h, dead = []) {
  const boards = [];
  let i = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      for (let z = 0; z < 3; z++) {
        const [col, row] = cell(x, y, z);
        const isDead = dead.some((d) => d[0] === x && d[1] === y && d[2] === z);
        boards.push({
          x, y, z, col, row, dead: isDead,
          loc: isDead ? null : [Math.floor(i / 120), Math.floor(i / 24) % 5, i % 24],
          ip: isDead ? null : `127.64.0.${8 * (i % 24) + 1}`,
        });
        i += 1;
      }
    }
  }
  return boards;
}

function setup(extra = {}) {
  const dom = new JSDOM("<!doctype html><html><body><div id='out'></div></body></html>");
  const el = dom.window.document.getElementById("out");
  const state = {
    machine: "m", width: 2, height: 2, status: "live",
    boards: machine(2, 2, [[1, 1, 1]]),
    dead_links: [[0, 0, 0, 2], [0, 0, 2, 5]],
    jobs: [
      { id: 7, key: "A", owner: "alice", boards: [[0, 0, 0], [0, 0, 1], [0, 0, 2]], colour: "#8dd3c7", mine: true, state: 3, power: true },
      { id: 9, key: "B", owner: "bob", boards: [[1, 0, 2]], colour: "#bebada", mine: false, state: 3, power: true },
    ],
    highlight_job: null, selected: null, selected_chip: null, chip_query: null, answer: {},
    ...extra,
  };
  const model = fakeModel(state);
  const cleanup = mod.default.render({ model, el });
  return { dom, el, model, cleanup, window: dom.window };
}

const hexes = (el) => [...el.querySelectorAll("polygon.sbm-board")];
const hexOf = (el, model, x, y, z) => {
  const i = model.get("boards").findIndex((b) => b.x === x && b.y === y && b.z === z);
  return el.querySelector(`polygon.sbm-board[data-i="${i}"]`);
};

test("draws one hexagon per board, coloured by job, dead boards marked", () => {
  const { el, model } = setup();
  assert.equal(hexes(el).length, 12);
  const a = hexOf(el, model, 0, 0, 1);
  assert.match(a.getAttribute("class"), /sbm-used/);
  assert.match(a.getAttribute("class"), /sbm-mine/);
  assert.equal(a.style.fill, "#8dd3c7");
  const b = hexOf(el, model, 1, 0, 2);
  assert.doesNotMatch(b.getAttribute("class"), /sbm-mine/);
  assert.match(hexOf(el, model, 1, 1, 1).getAttribute("class"), /sbm-dead/);
  assert.match(hexOf(el, model, 1, 1, 0).getAttribute("class"), /sbm-free/);
  assert.equal(el.querySelectorAll("line.sbm-dead-link").length, 2);
  const labels = [...el.querySelectorAll("text.sbm-label")].map((t) => t.textContent).sort();
  assert.deepEqual(labels, ["A", "A", "A", "B", "×"]);
});

test("legend lists job id, owner and boards, yours first-class", () => {
  const { el } = setup();
  const rows = [...el.querySelectorAll(".sbm-legend-row")];
  assert.equal(rows.length, 2);
  assert.match(rows[0].textContent, /job 7 · alice \(you\) · 3 boards/);
  assert.match(rows[0].className, /sbm-mine/);
  assert.match(rows[1].textContent, /job 9 · bob · 1 board$/);
  assert.match(el.querySelector(".sbm-summary").textContent, /11 boards, 4 in use, 2 jobs, 1 dead/);
});

test("hover shows board, location, IP, job and owner", () => {
  const { el, model, window } = setup();
  const hex = hexOf(el, model, 1, 0, 2);
  hex.dispatchEvent(new window.MouseEvent("mouseover", { bubbles: true }));
  const text = el.querySelector(".sbm-hover").textContent;
  assert.match(text, /Board \(1, 0, 2\)/);
  assert.match(text, /cabinet 0, frame 0, board 8/);
  assert.match(text, /IP 127\.64\.0\.65/);
  assert.match(text, /job 9 \(bob\)/);
  assert.equal(hex.querySelector("title").textContent, text);
  hexOf(el, model, 1, 1, 0).dispatchEvent(new window.MouseEvent("mouseover", { bubbles: true }));
  assert.match(el.querySelector(".sbm-hover").textContent, /Board \(1, 1, 0\).*free$/);
});

test("click sets selected and saves it", () => {
  const { el, model, window } = setup();
  hexOf(el, model, 0, 1, 2).dispatchEvent(new window.MouseEvent("click", { bubbles: true }));
  assert.deepEqual(model.get("selected"), [0, 1, 2]);
  assert.equal(model.get("selected_chip"), null); // jsdom has no layout to place the click
  assert.equal(model.saved, 1);
  assert.deepEqual(model.sent, [{ ask: "board", board: [0, 1, 2], chip: null }]);
  assert.equal(el.querySelectorAll("polygon.sbm-selected").length, 1);
  // The same board again is a new question.
  hexOf(el, model, 0, 1, 2).dispatchEvent(new window.MouseEvent("click", { bubbles: true }));
  assert.equal(model.sent.length, 2);
});

test("where-is answer shown with the CLI's labels and the chip marked", () => {
  const { el, model } = setup();
  model.set("answer", { pending: true, query: "board (1, 0, 2)" });
  assert.match(el.querySelector(".sbm-answer").textContent, /asking the server/);
  model.set("answer", {
    query: "chip (9, 21)", machine: "m", physical: [0, 0, 5], logical: [1, 0, 2],
    chip: [9, 21], board_chip: [5, 1], job_id: null, job_chip: null,
  });
  const text = el.querySelector(".sbm-answer").textContent;
  assert.match(text, /Physical locationCabinet 0, Frame 0, Board 5/);
  assert.match(text, /Board coordinate\(1, 0, 2\)/);
  assert.match(text, /Coordinates within board\(5, 1\)/);
  assert.match(text, /Job using boardNone/);
  assert.doesNotMatch(text, /Coordinates within job/);
  assert.equal(el.querySelectorAll("circle.sbm-chip").length, 1);
  model.set("answer", { query: "board (9, 9, 9)", error: "No boards at the specified location" });
  assert.match(el.querySelector(".sbm-error").textContent, /No boards/);
});

test("legend click outlines the job and offers the chip form", () => {
  const { el, model, window } = setup();
  assert.equal(el.querySelector(".sbm-chip-form").hidden, true);
  el.querySelector('.sbm-legend-row[data-job="7"] .sbm-legend-text').dispatchEvent(
    new window.MouseEvent("click", { bubbles: true }));
  assert.equal(model.get("highlight_job"), 7);
  assert.equal(model.saved, 1);
  // A triad's outline: 3 hexagons with 6 edges each, 2 shared pairs inside -> 12 edges.
  assert.equal(el.querySelectorAll("line.sbm-outline").length, 12);
  assert.equal(el.querySelectorAll("polygon.sbm-hl").length, 3);
  const form = el.querySelector(".sbm-chip-form");
  assert.equal(form.hidden, false);
  form.querySelector(".sbm-chip-x").value = "9";
  form.querySelector(".sbm-chip-y").value = "14";
  form.dispatchEvent(new window.Event("submit", { bubbles: true, cancelable: true }));
  assert.deepEqual(model.get("chip_query"), [9, 14]);
  assert.equal(model.saved, 2);
  assert.deepEqual(model.sent, [{ ask: "job_chip", job_id: 7, chip: [9, 14] }]);
});

test("live: a new job and a vanished job redraw the map", () => {
  const { el, model } = setup({ jobs: [] });
  assert.equal(el.querySelectorAll(".sbm-used").length, 0);
  model.set("jobs", [{ id: 3, key: "A", owner: "carol", boards: [[1, 1, 2]], colour: "#fb8072", mine: false }]);
  assert.equal(el.querySelectorAll(".sbm-used").length, 1);
  assert.equal(hexOf(el, model, 1, 1, 2).style.fill, "#fb8072");
  const node = hexOf(el, model, 1, 1, 2);
  model.set("jobs", []);
  assert.equal(el.querySelectorAll(".sbm-used").length, 0);
  assert.equal(hexes(el).length, 12);
  // A job change restyles the same hexagons rather than rebuilding them.
  assert.equal(hexOf(el, model, 1, 1, 2), node);
  assert.equal(node.style.fill, "");
  assert.match(node.querySelector("title").textContent, /free$/);
  model.set("boards", machine(1, 1));
  assert.equal(hexes(el).length, 3);
});

test("a 1200-board (20x20-triad) machine renders all 1200 boards", () => {
  const boards = machine(20, 20);
  const jobs = [{ id: 1, key: "A", owner: "x", boards: boards.slice(0, 600).map((b) => [b.x, b.y, b.z]), colour: "#80b1d3", mine: false }];
  const { el } = setup({ width: 20, height: 20, boards, jobs, dead_links: [] });
  const polys = hexes(el);
  assert.equal(polys.length, 1200);
  assert.equal(new Set(polys.map((p) => p.getAttribute("points"))).size, 1200, "no two boards overlap");
  assert.equal(el.querySelectorAll(".sbm-used").length, 600);
  const vb = el.querySelector("svg").getAttribute("viewBox").split(" ").map(Number);
  assert.ok(vb[2] > 0 && vb[3] > 0);
});

test("a single board still draws, at a bounded natural size", () => {
  const boards = machine(1, 1, [[0, 0, 1], [0, 0, 2]]);
  const { el } = setup({ width: 1, height: 1, boards, jobs: [], dead_links: [] });
  assert.equal(hexes(el).length, 3);
  assert.equal(el.querySelectorAll(".sbm-free").length, 1);
  assert.match(el.querySelector("svg").style.getPropertyValue("--sbm-natural"), /^\d+px$/);
});

test("zoom buttons step and fit", () => {
  const { el, window } = setup();
  const svg = el.querySelector("svg");
  const click = (cls) => el.querySelector(cls).dispatchEvent(new window.MouseEvent("click", { bubbles: true }));
  assert.equal(svg.style.getPropertyValue("--sbm-zoom"), "1");
  click(".sbm-zoom-in");
  click(".sbm-zoom-in");
  assert.equal(svg.style.getPropertyValue("--sbm-zoom"), "2");
  click(".sbm-zoom-fit");
  assert.equal(svg.style.getPropertyValue("--sbm-zoom"), "1");
});

test("fit budget: the visible height less the bar and a legend below, never tiny", () => {
  assert.equal(mod.fitHeight(779, 250), 779 - 250 - mod.FIT_MARGIN_PX);
  assert.equal(mod.fitHeight(300, 250), mod.MIN_FIT_PX);
});

/** A board map rendered inside a notebook view `visible` px high, with a faked layout. */
async function laidOut(visible, layout) {
  const dom = new JSDOM(
    "<!doctype html><body><div class='jp-WindowedPanel-outer'><div id='out'></div></div></body>",
    { pretendToBeVisual: true }); // requestAnimationFrame
  const doc = dom.window.document;
  Object.defineProperty(doc.querySelector(".jp-WindowedPanel-outer"), "clientHeight", { value: visible });
  const el = doc.getElementById("out");
  const model = fakeModel({ machine: "m", width: 2, height: 2, status: "live", boards: machine(2, 2),
    dead_links: [], jobs: [], highlight_job: null, answer: {} });
  const cleanup = mod.default.render({ model, el });
  for (const [cls, [top, bottom]] of Object.entries(layout)) {
    el.querySelector(cls).getBoundingClientRect = () => ({ top, bottom, height: bottom - top });
  }
  // Set once the output is attached, in the next animation frame.
  const root = el.querySelector(".spalloc-boardmap");
  for (let i = 0; i < 100 && !root.style.getPropertyValue("--sbm-fit-h"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const fit = root.style.getPropertyValue("--sbm-fit-h");
  cleanup();
  return fit;
}

test("fit leaves room for the legend when it sits below the map", async () => {
  // Bar 0-28, map 28-700, legend panel below it 710-900: 200 px of widget outside the map.
  const below = { ".spalloc-boardmap": [0, 900], ".sbm-viewport": [28, 700], ".sbm-side": [710, 900] };
  assert.equal(await laidOut(779, below), `${779 - 28 - 200 - mod.FIT_MARGIN_PX}px`);
  // Beside the map (a small machine in a wide notebook): only the bar counts.
  const beside = { ".spalloc-boardmap": [0, 900], ".sbm-viewport": [28, 700], ".sbm-side": [28, 900] };
  assert.equal(await laidOut(779, beside), `${779 - 28 - mod.FIT_MARGIN_PX}px`);
});

test("cleanup removes every model listener and the drawing", () => {
  const { el, model, cleanup } = setup();
  assert.ok(model.listeners() > 0);
  cleanup();
  assert.equal(model.listeners(), 0);
  assert.equal(el.children.length, 0);
});

test("chip geometry: every board chip round-trips through its screen offset", () => {
  let n = 0;
  for (let lx = 0; lx < 8; lx++) {
    for (let ly = 0; ly < 8; ly++) {
      if (!mod.onBoard(lx, ly)) continue;
      n += 1;
      const [dx, dy] = mod.chipOffset(lx, ly);
      assert.deepEqual(mod.chipAt(dx, dy), [lx, ly]);
    }
  }
  assert.equal(n, 48);
  assert.equal(mod.chipAt(1000, 0), null);
});

test("link edges face the hexagon across that link", () => {
  const steps = [[1, 1], [1, -1], [0, -2], [-1, -1], [-1, 1], [0, 2]];
  const c = mod.hexCentre(0, 0);
  steps.forEach(([dc, dr], link) => {
    const [p, q] = mod.linkEdge(c, link);
    const mid = [(p[0] + q[0]) / 2, (p[1] + q[1]) / 2];
    const n = mod.hexCentre(dc, dr);
    // The neighbour's centre is twice the edge midpoint away from ours.
    assert.ok(Math.abs(n[0] - 2 * mid[0]) < 1e-9 && Math.abs(n[1] - 2 * mid[1]) < 1e-9, `link ${link}`);
  });
});

test("a click inside a board also picks the chip under the pointer", () => {
  const { el, model, window } = setup();
  const svg = el.querySelector("svg");
  // jsdom does no layout: give the SVG an identity screen transform, as a browser at 1:1 would.
  svg.getScreenCTM = () => ({ inverse: () => ({}) });
  svg.createSVGPoint = () => ({ x: 0, y: 0, matrixTransform() { return { x: this.x, y: this.y }; } });
  const b = model.get("boards").find((r) => r.x === 1 && r.y === 0 && r.z === 2);
  const c = mod.hexCentre(b.col, b.row);
  const d = mod.chipOffset(5, 1);
  hexOf(el, model, 1, 0, 2).dispatchEvent(
    new window.MouseEvent("click", { bubbles: true, clientX: c[0] + d[0], clientY: c[1] + d[1] }));
  assert.deepEqual(model.get("selected"), [1, 0, 2]);
  assert.deepEqual(model.get("selected_chip"), [5, 1]);
  assert.deepEqual(model.sent, [{ ask: "board", board: [1, 0, 2], chip: [5, 1] }]);
});

test("a map whose kernel is gone says it is not live", async () => {
  const { el, model, cleanup } = setup();
  assert.match(el.querySelector(".sbm-status").textContent, /live/);
  el.classList.add("jupyter-widgets-disconnected");
  model.set("status", "live"); // any redraw, or the class change itself
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.match(el.querySelector(".sbm-status").textContent, /disconnected from the kernel: not live/);
  assert.ok(el.querySelector(".spalloc-boardmap").classList.contains("sbm-gone"));
  assert.equal(mod.render, undefined, "default export only (anywidget deprecation)");
  cleanup();
});

test("a big machine is folded into a rectangle that fills the frame", () => {
  const boards = machine(20, 20);
  const { el } = setup({ width: 20, height: 20, boards, jobs: [], dead_links: [] });
  const polys = hexes(el);
  assert.equal(new Set(polys.map((p) => p.getAttribute("points"))).size, 1200, "no overlap");
  const [, , w, h] = el.querySelector("svg").getAttribute("viewBox").split(" ").map(Number);
  // Slanted, a 20x20 machine is 90 radii wide; folded it is 2*20 columns = 60 radii.
  assert.ok(w < 62 * 10 && w > 58 * 10, `width ${w}`);
  assert.ok(w / h > 0.9 && w / h < 1.4, `aspect ${w / h}`);
  assert.ok(el.querySelector(".spalloc-boardmap").classList.contains("sbm-folded"));
  assert.equal(mod.foldColumn(-3, 20, true), 37);
  assert.equal(mod.foldColumn(-3, 20, false), -3);
  // A small machine keeps the layout of spalloc-machine's text map.
  const small = setup();
  assert.ok(!small.el.querySelector(".spalloc-boardmap").classList.contains("sbm-folded"));
});

test("boards and legend rows answer the keyboard", () => {
  const { el, model, window } = setup();
  const hex = hexOf(el, model, 1, 0, 2);
  assert.equal(hex.getAttribute("tabindex"), "0");
  hex.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  assert.deepEqual(model.sent.at(-1), { ask: "board", board: [1, 0, 2], chip: null });
  const row = el.querySelector('.sbm-legend-row[data-job="9"]');
  assert.equal(row.tabIndex, 0);
  row.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  assert.equal(model.get("highlight_job"), 9);
});

test("thirty jobs make a compact legend, each row titled in full", () => {
  const boards = machine(20, 20);
  const jobs = Array.from({ length: 30 }, (_, i) => ({
    id: 100 + i, key: String.fromCharCode(65 + (i % 26)), owner: `user${i}@example.org`,
    boards: [[i % 20, Math.floor(i / 20), 0]], colour: "#80b1d3", mine: false,
  }));
  const { el } = setup({ width: 20, height: 20, boards, jobs, dead_links: [] });
  assert.ok(el.querySelector(".sbm-legend-rows").classList.contains("sbm-compact"));
  const rows = el.querySelectorAll(".sbm-legend-row");
  assert.equal(rows.length, 30);
  assert.match(rows[29].title, /job 129 · user29@example.org · 1 board/);
  assert.ok(!setup().el.querySelector(".sbm-legend-rows").classList.contains("sbm-compact"));
});
