// What the user does on the map: hovering or focusing a board describes it, clicking it
// (or Enter) asks the server where it is, with the chip under the pointer; a legend row
// outlines its job; the chip form asks about a chip of that job. Each question is written
// back to the model and sent as a message, which the Python side answers into `answer`.

import { chipAt } from "./maphex.js";
import { describeBoard } from "./mapboards.js";

/** Listen to the map's and the side panel's elements (they go with the view). */
export function listenToInput(model, parts, drawing) {
  const { svg, hover, legend, chipForm } = parts;
  const { jobOf, at } = drawing;

  function boardFromEvent(evt) {
    const t = evt.target;
    if (!t || !t.getAttribute || t.getAttribute("data-i") === null) return null;
    return (model.get("boards") || [])[Number(t.getAttribute("data-i"))] || null;
  }

  // Click position in SVG units, or null where the browser cannot tell (e.g. jsdom).
  function svgPoint(evt) {
    if (typeof evt.clientX !== "number") return null; // a key press has no position
    if (typeof svg.getScreenCTM === "function" && typeof svg.createSVGPoint === "function") {
      const m = svg.getScreenCTM();
      if (m) {
        const p = svg.createSVGPoint();
        p.x = evt.clientX;
        p.y = evt.clientY;
        const q = p.matrixTransform(m.inverse());
        return [q.x, q.y];
      }
    }
    return null;
  }

  const onOver = (evt) => {
    const b = boardFromEvent(evt);
    if (b) hover.textContent = describeBoard(b, b.dead ? undefined : jobOf(b));
  };
  const onClick = (evt) => {
    const b = boardFromEvent(evt);
    if (!b) return;
    const p = svgPoint(evt);
    let chip = null;
    if (p && !b.dead) {
      const c = at(b);
      chip = chipAt(p[0] - c[0], p[1] - c[1]);
    }
    model.set("selected", [b.x, b.y, b.z]);
    model.set("selected_chip", chip);
    model.save_changes();
    // One message per click: asking about the same board twice still gets an answer.
    model.send({ ask: "board", board: [b.x, b.y, b.z], chip });
  };
  const onKey = (evt) => {
    if (evt.key !== "Enter" && evt.key !== " ") return;
    const b = boardFromEvent(evt);
    if (b) {
      evt.preventDefault();
      onClick(evt); // no pointer position: the whole board is asked about
      return;
    }
    const row = evt.target.closest ? evt.target.closest(".sbm-legend-row") : null;
    if (row) {
      evt.preventDefault();
      onLegend(evt);
    }
  };
  const onFocus = (evt) => onOver(evt);
  const onLegend = (evt) => {
    const row = evt.target.closest ? evt.target.closest(".sbm-legend-row") : null;
    if (!row) return;
    const id = Number(row.dataset.job);
    model.set("highlight_job", model.get("highlight_job") === id ? null : id);
    model.save_changes();
  };
  const onChip = (evt) => {
    evt.preventDefault();
    const xs = chipForm.querySelector(".sbm-chip-x");
    const ys = chipForm.querySelector(".sbm-chip-y");
    const x = Number.parseInt(xs.value, 10);
    const y = Number.parseInt(ys.value, 10);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    model.set("chip_query", [x, y]);
    model.save_changes();
    model.send({ ask: "job_chip", job_id: model.get("highlight_job"), chip: [x, y] });
  };
  svg.addEventListener("mouseover", onOver);
  svg.addEventListener("focusin", onFocus);
  svg.addEventListener("click", onClick);
  svg.addEventListener("keydown", onKey);
  legend.addEventListener("click", onLegend);
  legend.addEventListener("keydown", onKey);
  chipForm.addEventListener("submit", onChip);
}
