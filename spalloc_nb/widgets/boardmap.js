// Board map of one spalloc machine: an anywidget front end (no build step).
//
// The Python side (boardmap.py) owns all state and geometry; this module only
// draws the synced traits and writes back what the user picks:
//   boards        [{x, y, z, col, row, loc: [c, f, b] | null, ip, dead}]
//   dead_links    [[x, y, z, link]]            (one-way, seen from the sender)
//   jobs          [{id, key, owner, boards: [[x, y, z]], colour, mine, state, power}]
//   highlight_job job id whose boards are outlined (read/write)
//   selected      [x, y, z] clicked board (written here)
//   selected_chip [lx, ly] board-local chip under the click, or null (written here)
//   chip_query    [x, y] chip of the highlighted job to look up (written here)
//   answer        the server's where-is answer for the last question (read)
// Each question is also sent as a message, {ask: "board", board, chip} or
// {ask: "job_chip", job_id, chip}, which the Python side answers into `answer`.
//
// The map is drawn by several modules joined into this one by widgets/_esm.py: maphex.js
// (geometry), mapdom.js (elements), mapboards.js (the SVG), mapside.js (legend, answer,
// chip form), mapzoom.js (zoom and fit) and mapinput.js (pointer and keyboard).

import { escapeHtml, isDisconnected, onNotebookSave, replaceOutputs } from "./shared.js";
import { buildSkeleton } from "./mapdom.js";
import { boardDrawing } from "./mapboards.js";
import { drawAnswer, drawChipForm, drawLegend } from "./mapside.js";
import { mapSizing } from "./mapzoom.js";
import { listenToInput } from "./mapinput.js";

/** Draw the map into `el`; returns a cleanup function (anywidget render contract). */
function render({ model, el }) {
  const doc = el.ownerDocument;
  const parts = buildSkeleton(doc, el);
  const { root, title, status, svg } = parts;
  const sizing = mapSizing(el, parts);
  const { drawBoards, drawLinks, drawMarks, jobOf, at } = boardDrawing({
    model,
    doc,
    parts,
    afterBoards: sizing.applyZoom,
    onDrawn: () => drawLegend(model, doc, parts.legend),
  });
  const drawChips = () => drawChipForm(model, doc, parts.chipForm);
  const drawAnswers = () => drawAnswer(model, doc, parts.answer);

  function drawStatus() {
    const name = model.get("machine");
    const w = model.get("width");
    const h = model.get("height");
    title.textContent = name ? `${name} (${w}×${h} triads)` : "spalloc board map";
    // A map whose kernel is gone never claims to be live.
    const gone = isDisconnected(el);
    root.classList.toggle("sbm-gone", gone);
    status.textContent = gone
      ? "disconnected from the kernel: not live (the picture is from the last update)"
      : model.get("status") || "";
  }

  listenToInput(model, parts, { jobOf, at });

  const redrawHighlight = () => {
    drawBoards();
    drawChips();
  };
  const marksAndAnswer = () => {
    drawMarks();
    drawAnswers();
  };
  const handlers = [
    ["change:boards", drawBoards],
    ["change:jobs", redrawHighlight],
    ["change:dead_links", drawLinks],
    ["change:highlight_job", redrawHighlight],
    ["change:selected", drawMarks],
    ["change:answer", marksAndAnswer],
    ["change:chip_query", drawChips],
    ["change:machine", drawStatus],
    ["change:status", drawStatus],
  ];
  for (const [ev, fn] of handlers) model.on(ev, fn);

  // ipywidgets marks views whose comm died with a class; watch this view and its containers.
  const watched = new doc.defaultView.MutationObserver(drawStatus);
  const watch = () => {
    for (let node = el; node; node = node.parentElement) {
      watched.observe(node, { attributes: true, attributeFilter: ["class"] });
    }
    drawStatus();
  };
  model.on("comm_live_update", drawStatus);
  const later = setTimeout(watch, 0); // containers are attached after this view renders

  // A notebook saved after the kernel went away keeps the last picture as static SVG
  // (colours inlined, since the stylesheet is not saved), not a widget view that a
  // reopened notebook could only show as "model not found".
  const saveStatic = () => {
    if (!isDisconnected(el)) return;
    const picture = svg.cloneNode(true);
    const view = doc.defaultView;
    const originals = svg.querySelectorAll("polygon, line, text, circle");
    picture.querySelectorAll("polygon, line, text, circle").forEach((node, i) => {
      const style = view.getComputedStyle(originals[i]);
      for (const prop of ["fill", "stroke", "stroke-width", "opacity", "display", "font-size",
        "vector-effect", "text-anchor", "dominant-baseline"]) {
        const value = style.getPropertyValue(prop);
        if (value) node.setAttribute(prop, value);
      }
    });
    picture.removeAttribute("class");
    const natural = svg.style.getPropertyValue("--sbm-natural") || "900px";
    picture.setAttribute("style", `display:block;width:100%;max-width:${natural}`);
    const name = model.get("machine") || "board map";
    const note = `${name}: this map lost its kernel (restart or shutdown) before ` +
      `${new Date().toTimeString().slice(0, 8)}; the picture is its last update, not live.`;
    const jobs = (model.get("jobs") || []).map((j) =>
      `<li>${escapeHtml(j.key)}: job ${j.id} \u00b7 ${escapeHtml(j.owner)} \u00b7 ` +
      `${j.boards.length} board${j.boards.length === 1 ? "" : "s"}</li>`).join("");
    replaceOutputs(model.widget_manager, model.get("box_id"), {
      "text/html": `<div><p><strong>${escapeHtml(note)}</strong></p>${picture.outerHTML}` +
        `<ul style="list-style:none;padding:0">${jobs}</ul></div>`,
      "text/plain": note,
    });
  };
  const stopSaveHook = onNotebookSave(model, saveStatic);
  sizing.observe();

  drawStatus();
  drawBoards();
  drawChips();
  drawAnswers();
  watch();

  return () => {
    clearTimeout(later);
    stopSaveHook();
    sizing.stop();
    watched.disconnect();
    model.off("comm_live_update", drawStatus);
    for (const [ev, fn] of handlers) model.off(ev, fn);
    root.remove(); // a re-render (e.g. hot reload) starts from an empty element
  };
}

export default { render };
