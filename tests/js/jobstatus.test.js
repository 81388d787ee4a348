// The job widget's status panel: a view whose kernel is gone never claims a live job.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { JSDOM } from "jsdom";
import { loadWidget } from "./esm.js";
import { fakeModel, fakeNotebook } from "./fakes.js";

// The module as anywidget gets it: jobstatus.js joined with shared.js.
const mod = await loadWidget("jobstatus.js");

const LIVE = '<div class="spalloc-job spalloc-job-live"><strong>Job 3</strong><table>' +
  '<tr class="spalloc-live-row"><th>State</th><td>ready</td></tr>' +
  "<tr><th>Boards</th><td>1: (0, 0, 0)</td></tr></table></div>";

function setup() {
  const dom = new JSDOM(
    "<!doctype html><body><div class='spalloc-job-widget' id='box'><div id='out'></div>" +
    "<button id='off'>Power off</button><button id='map'>Map</button></div></body>");
  const el = dom.window.document.getElementById("out");
  const model = fakeModel({ value: LIVE, busy: "", ack: 0 });
  const cleanup = mod.default.render({ model, el });
  return { dom, el, model, cleanup, box: dom.window.document.getElementById("box") };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

test("renders the kernel's summary and follows changes", () => {
  const { el, model, cleanup } = setup();
  assert.match(el.textContent, /Job 3/);
  model.set("value", "<b>Job 3 — destroyed</b>");
  assert.match(el.textContent, /destroyed/);
  assert.equal(el.querySelector(".spalloc-gone"), null);
  cleanup();
  assert.equal(el.children.length, 0);
});

test("a disconnected view says so and marks the live rows to be hidden", async () => {
  const { el, model, box, cleanup } = setup();
  await settle();
  // What ipywidgets does when the comm dies (kernel restart or shutdown).
  box.classList.add("jupyter-widgets-disconnected");
  model.trigger("comm_live_update");
  await settle();
  const root = el.querySelector(".spalloc-job-status");
  assert.ok(root.classList.contains("spalloc-gone"));
  assert.ok(box.classList.contains("spalloc-gone"), "the whole job widget greys out");
  assert.match(root.querySelector(".spalloc-job-disconnected").textContent, /Disconnected/);
  assert.ok(root.querySelector(".spalloc-live-row"), "the stylesheet hides these rows");
  // Reconnected (e.g. the page reloaded while the kernel lives): live again.
  box.classList.remove("jupyter-widgets-disconnected");
  await settle();
  assert.ok(!root.classList.contains("spalloc-gone"));
  cleanup();
});

test("the stylesheet hides live rows and disables buttons once disconnected", () => {
  const css = readFileSync(new URL("../../spalloc_nb/widgets/jobstatus.css", import.meta.url), "utf8");
  assert.match(css, /\.spalloc-gone \.spalloc-live-row \{ display: none; \}/);
  assert.match(css, /jupyter-widgets-disconnected button/);
});

test("only a default export: anywidget warns about a named render export", () => {
  assert.equal(mod.render, undefined);
  assert.equal(typeof mod.default.render, "function");
});

test("a click is acknowledged at once, then by the kernel", async () => {
  const { el, model, dom, cleanup } = setup();
  const progress = el.querySelector(".spalloc-job-progress");
  assert.ok(progress.hidden);
  dom.window.document.getElementById("map").click(); // not an action: no note
  assert.ok(progress.hidden);
  dom.window.document.getElementById("off").click();
  assert.equal(progress.textContent, "Power off: sent to the kernel\u2026");
  model.set("busy", "Powering off\u2026");
  assert.equal(progress.textContent, "Powering off\u2026");
  model.set("busy", "");
  model.set("ack", 1);
  assert.ok(progress.hidden);
  cleanup();
});

test("a click the kernel does not answer is said to be waiting for it", async () => {
  const { el, dom, cleanup } = setup();
  dom.window.document.getElementById("off").click();
  await new Promise((resolve) => setTimeout(resolve, mod.QUEUED_AFTER + 100));
  assert.equal(el.querySelector(".spalloc-job-progress").textContent, mod.queuedText("Power off"));
  cleanup();
});

test("saved while disconnected: the output becomes static, without live rows", async () => {
  const dom = new JSDOM("<!doctype html><body><div class='spalloc-job-widget' id='box'><div id='out'></div></div></body>");
  const el = dom.window.document.getElementById("out");
  const manager = fakeNotebook([[{ data: { "application/vnd.jupyter.widget-view+json": { model_id: "root" } } }]]);
  const slots = [];
  manager.context.saveState = { connect: (s) => slots.push(s), disconnect: (s) => slots.splice(slots.indexOf(s), 1) };
  const model = fakeModel({ value: LIVE, busy: "", ack: 0, root_id: "root" });
  model.widget_manager = manager;
  const cleanup = mod.default.render({ model, el });
  for (const slot of slots) slot(null, "started"); // connected: nothing changes
  assert.ok(manager.cells[0].outputs.list[0].data["application/vnd.jupyter.widget-view+json"]);
  dom.window.document.getElementById("box").classList.add("jupyter-widgets-disconnected");
  for (const slot of slots) slot(null, "started");
  const saved = manager.cells[0].outputs.list[0].data;
  assert.equal(saved["application/vnd.jupyter.widget-view+json"], undefined);
  assert.match(saved["text/plain"], /^Job 3 — state unknown: this output lost its kernel/);
  assert.doesNotMatch(saved["text/html"], /ready/);
  assert.match(saved["text/html"], /Boards/);
  cleanup();
  assert.equal(slots.length, 0);
});
