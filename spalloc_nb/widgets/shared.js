// Helpers every spalloc widget front end shares: noticing that a view lost its kernel, and
// turning its outputs into static ones when the notebook is saved in that state.
//
// anywidget loads each widget's `_esm` as one standalone module, so this file is not
// imported at run time: the Python side (widgets/_esm.py) puts its text in place of the
// `import { ... } from "./shared.js";` line of each widget module.

const GONE_CLASS = "jupyter-widgets-disconnected";

/**
 * True if `el` or one of its ancestors is a disconnected widget view.
 *
 * ipywidgets marks a view whose comm died (kernel restarted, shut down, notebook reopened
 * from saved widget state) with the class `jupyter-widgets-disconnected`.
 */
export function isDisconnected(el) {
  for (let node = el; node; node = node.parentElement) {
    if (node.classList && node.classList.contains(GONE_CLASS)) return true;
  }
  return false;
}

const WIDGET_VIEW = "application/vnd.jupyter.widget-view+json";

/**
 * Replace, in the notebook model, every output that shows widget `modelId` by `data`.
 *
 * Used when a notebook is saved while the view has lost its kernel (a restart: the old
 * kernel's final views never reach the front end, which dropped its state first). The
 * saved output is then static and true, instead of a widget view that a reopened notebook
 * could only show as "model not found". Needs the widget manager's document context
 * (JupyterLab and Notebook 7); elsewhere nothing happens. Returns how many were replaced.
 */
export function replaceOutputs(manager, modelId, data) {
  const notebook = manager && manager.context && manager.context.model;
  const cells = notebook && notebook.cells;
  if (!modelId || !cells || typeof cells.get !== "function") return 0;
  let replaced = 0;
  for (let i = 0; i < cells.length; i++) {
    const outputs = cells.get(i).outputs;
    if (!outputs || typeof outputs.get !== "function") continue;
    for (let j = 0; j < outputs.length; j++) {
      const output = outputs.get(j);
      const view = output && output.data && output.data[WIDGET_VIEW];
      if (view && view.model_id === modelId) {
        outputs.set(j, { output_type: "display_data", data, metadata: {} });
        replaced += 1;
      }
    }
  }
  return replaced;
}

/** Call `onSave` when the notebook holding `model`'s views starts saving; returns an undo. */
export function onNotebookSave(model, onSave) {
  const context = model.widget_manager && model.widget_manager.context;
  const signal = context && context.saveState;
  if (!signal || typeof signal.connect !== "function") return () => {};
  const slot = (_sender, state) => {
    if (state === "started") onSave();
  };
  signal.connect(slot);
  return () => signal.disconnect(slot);
}

/** `text` safe inside HTML text content (the static outputs are built as strings). */
export function escapeHtml(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;");
}
