// The map itself: the boards' hexagons coloured by job, their job letters, dead links,
// the highlighted job's outline and the selected board / answered chip. The hexagons are
// built only when the board list changes; a job change restyles them.

import { FOLD_MIN_BOARDS, LINK_STEP, R, chipOffset, corner, foldColumn, hexCentre, key3, linkEdge, points } from "./maphex.js";
import { svgEl } from "./mapdom.js";

/** Hover text for one board. */
export function describeBoard(board, job) {
  const parts = [`Board (${board.x}, ${board.y}, ${board.z})`];
  if (board.loc) {
    parts.push(`cabinet ${board.loc[0]}, frame ${board.loc[1]}, board ${board.loc[2]}`);
  }
  if (board.ip) parts.push(`IP ${board.ip}`);
  if (board.dead) parts.push("dead");
  else if (job) parts.push(`job ${job.id} (${job.owner})${job.mine ? " — yours" : ""}`);
  else parts.push("free");
  return parts.join(" · ");
}

/**
 * The drawing of `model`'s boards, links and marks into the skeleton's SVG groups.
 *
 * `afterBoards` is called after the boards are drawn, between restyling the hexagons and
 * drawing the links (the zoom is applied there), and `onDrawn` at the end (the legend).
 */
export function boardDrawing({ model, doc, parts, afterBoards, onDrawn }) {
  const { root, svg, gBoards, gLabels, gLinks, gMarks } = parts;
  let index = new Map(); // "x,y,z" -> board record
  let owner = new Map(); // "x,y,z" -> job record
  let built = null;
  let hexNodes = [];
  let fold = false;
  const col = (c) => foldColumn(c, model.get("width"), fold);
  /** Centre of board `b`'s hexagon, folded as drawn. */
  const at = (b) => hexCentre(col(b.col), b.row);

  function jobOf(b) {
    return owner.get(key3([b.x, b.y, b.z]));
  }

  function buildBoards(boards) {
    gBoards.replaceChildren();
    fold = boards.length >= FOLD_MIN_BOARDS;
    root.classList.toggle("sbm-folded", fold);
    hexNodes = boards.map((b, i) => {
      const c = at(b);
      const hex = svgEl(doc, "polygon", {
        points: points([0, 1, 2, 3, 4, 5].map((k) => corner(c, k, R * 0.97))),
        "data-i": i,
        // Reachable by keyboard: Tab to a board, Enter asks where it is.
        tabindex: 0,
        role: "button",
      });
      hex.append(svgEl(doc, "title"));
      gBoards.append(hex);
      return hex;
    });
    const xs = boards.map((b) => at(b)[0]);
    const ys = boards.map((b) => at(b)[1]);
    const x0 = boards.length ? Math.min(...xs) : 0;
    const y0 = boards.length ? Math.min(...ys) : 0;
    const pad = R * 1.3;
    const w = (boards.length ? Math.max(...xs) : 0) - x0 + 2 * pad;
    const h = (boards.length ? Math.max(...ys) : 0) - y0 + 2 * pad;
    svg.setAttribute("viewBox", `${(x0 - pad).toFixed(2)} ${(y0 - pad).toFixed(2)} ${w.toFixed(2)} ${h.toFixed(2)}`);
    // Natural size keeps one board from filling a whole notebook column; the aspect lets
    // "fit" show the whole machine within the frame's height too.
    svg.style.setProperty("--sbm-natural", `${Math.round(w * 4)}px`);
    svg.style.setProperty("--sbm-aspect", (w / h).toFixed(4));
    built = boards;
  }

  function drawBoards() {
    const boards = model.get("boards") || [];
    const jobs = model.get("jobs") || [];
    const hl = model.get("highlight_job");
    index = new Map(boards.map((b) => [key3([b.x, b.y, b.z]), b]));
    owner = new Map();
    for (const job of jobs) for (const b of job.boards) owner.set(key3(b), job);
    if (boards !== built) buildBoards(boards);

    gLabels.replaceChildren();
    boards.forEach((b, i) => {
      const job = b.dead ? undefined : jobOf(b);
      let cls = "sbm-board";
      if (b.dead) cls += " sbm-dead";
      else if (job) cls += " sbm-used" + (job.mine ? " sbm-mine" : "");
      else cls += " sbm-free";
      if (job && hl !== null && hl !== undefined && job.id === hl) cls += " sbm-hl";
      const hex = hexNodes[i];
      hex.setAttribute("class", cls);
      hex.style.fill = job ? job.colour : "";
      hex.firstChild.textContent = describeBoard(b, job);
      if (job || b.dead) {
        const c = at(b);
        const label = svgEl(doc, "text", { x: c[0], y: c[1], class: "sbm-label" });
        label.textContent = b.dead ? "×" : job.key;
        gLabels.append(label);
      }
    });
    afterBoards();
    drawLinks();
    drawMarks();
    onDrawn();
  }

  function drawLinks() {
    gLinks.replaceChildren();
    for (const [x, y, z, link] of model.get("dead_links") || []) {
      const b = index.get(key3([x, y, z]));
      if (!b) continue;
      const [p, q] = linkEdge(at(b), link, R * 0.8);
      const line = svgEl(doc, "line", { class: "sbm-dead-link", x1: p[0], y1: p[1], x2: q[0], y2: q[1] });
      const tip = svgEl(doc, "title");
      tip.textContent = `Dead link ${link} of board (${x}, ${y}, ${z})`;
      line.append(tip);
      gLinks.append(line);
    }
  }

  // Outline of the highlighted job (edges with no job board across them) and the
  // selected board / answered chip.
  function drawMarks() {
    gMarks.replaceChildren();
    const hl = model.get("highlight_job");
    const job = (model.get("jobs") || []).find((j) => j.id === hl);
    if (job) {
      const cells = new Set();
      const mine = [];
      for (const t of job.boards) {
        const b = index.get(key3(t));
        if (b) {
          cells.add(`${col(b.col)},${b.row}`);
          mine.push(b);
        }
      }
      for (const b of mine) {
        LINK_STEP.forEach(([dc, dr], link) => {
          if (cells.has(`${col(b.col + dc)},${b.row + dr}`)) return;
          const [p, q] = linkEdge(at(b), link);
          gMarks.append(svgEl(doc, "line", { class: "sbm-outline", x1: p[0], y1: p[1], x2: q[0], y2: q[1] }));
        });
      }
    }
    const sel = model.get("selected");
    const b = sel ? index.get(key3(sel)) : undefined;
    if (b) {
      const c = at(b);
      gMarks.append(svgEl(doc, "polygon", {
        class: "sbm-selected",
        points: points([0, 1, 2, 3, 4, 5].map((k) => corner(c, k, R * 0.97))),
      }));
    }
    const ans = model.get("answer") || {};
    const where = ans.logical ? index.get(key3(ans.logical)) : undefined;
    if (where && ans.board_chip) {
      const c = at(where);
      const d = chipOffset(ans.board_chip[0], ans.board_chip[1]);
      gMarks.append(svgEl(doc, "circle", { class: "sbm-chip", cx: c[0] + d[0], cy: c[1] + d[1], r: R / 6 }));
    }
  }

  return { drawBoards, drawLinks, drawMarks, jobOf, at };
}
