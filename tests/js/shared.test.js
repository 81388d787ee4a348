// node --test suite for spalloc_nb/widgets/shared.js: the helpers both widget front ends
// get joined into their modules (the widgets' own suites test how they use them).
import assert from "node:assert/strict";
import { test } from "node:test";
import { JSDOM } from "jsdom";
import { loadShared, loadWidget, read, widgetSource } from "./esm.js";
import { fakeNotebook } from "./fakes.js";

const shared = await loadShared();
const HELPERS = ["escapeHtml", "isDisconnected", "onNotebookSave", "replaceOutputs"];

test("isDisconnected looks at the element and its ancestors", () => {
  const dom = new JSDOM("<!doctype html><body><div id='outer'><div id='inner'><span id='el'></span></div></div></body>");
  const doc = dom.window.document;
  const el = doc.getElementById("el");
  assert.equal(shared.isDisconnected(el), false);
  doc.getElementById("outer").classList.add("jupyter-widgets-disconnected");
  assert.equal(shared.isDisconnected(el), true, "a disconnected container counts");
  doc.getElementById("outer").classList.remove("jupyter-widgets-disconnected");
  el.classList.add("jupyter-widgets-disconnected");
  assert.equal(shared.isDisconnected(el), true);
  assert.equal(shared.isDisconnected(null), false);
});

test("replaceOutputs swaps only the outputs showing that widget", () => {
  const view = (id) => ({ data: { "application/vnd.jupyter.widget-view+json": { model_id: id }, "text/plain": "live" } });
  const manager = fakeNotebook([[view("a"), { data: { "text/plain": "other" } }], [], [view("b"), view("a")]]);
  const n = shared.replaceOutputs(manager, "a", { "text/plain": "final" });
  assert.equal(n, 2);
  assert.deepEqual(manager.cells[0].outputs.list[0].data, { "text/plain": "final" });
  assert.equal(manager.cells[0].outputs.list[1].data["text/plain"], "other");
  assert.equal(manager.cells[2].outputs.list[0].data["text/plain"], "live");
  assert.deepEqual(manager.cells[2].outputs.list[1].data, { "text/plain": "final" });
  assert.equal(shared.replaceOutputs({}, "a", {}), 0, "no document context: nothing to do");
  assert.equal(shared.replaceOutputs(manager, "", {}), 0, "no model id: nothing to do");
});

test("onNotebookSave calls back when a save starts, and undoes", () => {
  const slots = [];
  const saveState = { connect: (s) => slots.push(s), disconnect: (s) => slots.splice(slots.indexOf(s), 1) };
  const model = { widget_manager: { context: { saveState } } };
  let saves = 0;
  const undo = shared.onNotebookSave(model, () => { saves += 1; });
  assert.equal(slots.length, 1);
  for (const state of ["started", "completed", "failed"]) slots[0](null, state);
  assert.equal(saves, 1, "only the start of a save");
  undo();
  assert.equal(slots.length, 0);
  // No document context (e.g. VS Code, Colab): nothing to hook, and undo is harmless.
  const none = shared.onNotebookSave({}, () => { saves += 1; });
  none();
  assert.equal(saves, 1);
});

test("escapeHtml escapes what could open a tag or an entity", () => {
  assert.equal(shared.escapeHtml("a < b && c"), "a &lt; b &amp;&amp; c");
  assert.equal(shared.escapeHtml(3), "3");
});

test("each widget module gets shared.js joined in once, in place of its import", async () => {
  const text = read("shared.js");
  for (const name of ["jobstatus.js", "boardmap.js"]) {
    assert.match(read(name), /^import \{[^}]*\} from "\.\/shared\.js";$/m);
    const joined = widgetSource(name);
    assert.equal(joined.split(text).length, 2, `${name}: shared.js once`);
    assert.doesNotMatch(joined, /^import /m, `${name}: standalone, no imports left`);
    // Nothing of the helpers is defined again in the widget's own file.
    for (const helper of HELPERS) {
      assert.doesNotMatch(read(name), new RegExp(`function ${helper}\\b|const ${helper}\\b`));
    }
    const mod = await loadWidget(name);
    assert.equal(typeof mod.default.render, "function");
  }
});
