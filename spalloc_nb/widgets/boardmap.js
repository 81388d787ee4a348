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

import { escapeHtml, isDisconnected, onNotebookSave, replaceOutputs } from "./shared.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const R = 10; // hexagon circumradius in SVG units
const LABEL_UNITS = 6; // the job letters' font size in SVG units (boardmap.css)
const SQRT3 = Math.sqrt(3);
// Centroid of the 48 chips of a SpiNN-5 board, in board-local chip coordinates.
const CENTROID = [11 / 3, 10 / 3];
const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8];
// More jobs than this and the legend becomes a compact grid.
const COMPACT_LEGEND = 8;

/** Centre of a board's hexagon from its layout cell (col, row in half-hex units). */
export function hexCentre(col, row) {
  return [1.5 * R * col, (SQRT3 / 2) * R * row];
}

/** Machines with at least this many boards are drawn folded into a rectangle. */
export const FOLD_MIN_BOARDS = 100;
/** Below this many screen pixels the job letters are hidden (hover shows the job). */
export const MIN_LABEL_PX = 7;
/** "fit" never makes the map shorter than this (a smaller view scrolls instead). */
export const MIN_FIT_PX = 160;
/** Room left below the widget at "fit" (the output area's padding, a little air). */
export const FIT_MARGIN_PX = 12;
// The notebook's scrolling view (JupyterLab 4 and Notebook 7; JupyterLab 3 scrolls the
// notebook itself): "fit" shows the whole widget, legend included, within its height.
const NOTEBOOK_VIEW = ".jp-WindowedPanel-outer, .jp-Notebook";

/**
 * The height, in pixels, the map may take at "fit": the visible height of the notebook
 * view less what the widget shows above and below the map (its title bar, and the
 * legend when it sits below the map), so the legend is not cut off at the bottom.
 */
export function fitHeight(visible, extra) {
  return Math.max(MIN_FIT_PX, Math.floor(visible - extra - FIT_MARGIN_PX));
}

/**
 * A board's layout column, folded for big machines.
 *
 * The triad layout slants (column 2x - y): a square machine fills only half of a
 * rectangular frame. Moving x by the machine's width moves a board by exactly 2·width
 * columns, so taking columns modulo 2·width re-tiles the same hexagons into a rectangle
 * (the cut is a wrap-around seam, as on the torus itself).
 */
export function foldColumn(col, width, fold) {
  if (!fold || !width) return col;
  const period = 2 * width;
  return ((col % period) + period) % period;
}

/** Corner `i` (0..5, anticlockwise from east) of a flat-topped hexagon. */
function corner(c, i, radius = R) {
  const a = (Math.PI / 3) * i;
  return [c[0] + radius * Math.cos(a), c[1] - radius * Math.sin(a)];
}

/** The two corners of the edge a board link leaves through (link 0 = east, lower right). */
export function linkEdge(c, link, radius = R) {
  return [corner(c, (link + 5) % 6, radius), corner(c, link % 6, radius)];
}

// Layout-cell offsets of the hexagon across each link (same order as the links).
const LINK_STEP = [[1, 1], [1, -1], [0, -2], [-1, -1], [-1, 1], [0, 2]];

/** Screen offset of a board-local chip from the board's centre. */
export function chipOffset(lx, ly) {
  const dx = lx - CENTROID[0];
  const dy = ly - CENTROID[1];
  return [(R / 4) * (dx - dy / 2), -(R / 4) * (SQRT3 / 2) * dy];
}

/** Whether (lx, ly) is one of the 48 chips of a board. */
export function onBoard(lx, ly) {
  return lx >= 0 && lx <= 7 && ly >= 0 && ly <= 7 && lx - ly >= -3 && lx - ly <= 4;
}

/** The board-local chip nearest an offset from the board's centre, or null. */
export function chipAt(dx, dy) {
  const v = -dy / ((R / 4) * (SQRT3 / 2));
  const u = dx / (R / 4) + v / 2;
  // "+ 0" turns a rounded -0 into 0.
  const lx = Math.round(u + CENTROID[0]) + 0;
  const ly = Math.round(v + CENTROID[1]) + 0;
  return onBoard(lx, ly) ? [lx, ly] : null;
}

const key3 = (b) => `${b[0]},${b[1]},${b[2]}`;
const fmt = (t) => (t ? `(${t.join(", ")})` : "—");

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

// Rows of the where-is answer, labelled as `spalloc-where-is` prints them.
const ANSWER_ROWS = [
  ["machine", "Machine", (v) => v],
  ["physical", "Physical location", (v) => `Cabinet ${v[0]}, Frame ${v[1]}, Board ${v[2]}`],
  ["logical", "Board coordinate", fmt],
  ["chip", "Machine chip coordinates", fmt],
  ["board_chip", "Coordinates within board", fmt],
  ["job_id", "Job using board", (v) => String(v)],
  ["job_chip", "Coordinates within job", fmt],
];

function svgEl(doc, name, attrs = {}) {
  const node = doc.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function htmlEl(doc, name, className, text) {
  const node = doc.createElement(name);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const points = (pts) => pts.map((p) => `${p[0].toFixed(2)},${p[1].toFixed(2)}`).join(" ");

/** Draw the map into `el`; returns a cleanup function (anywidget render contract). */
function render({ model, el }) {
  const doc = el.ownerDocument;
  let zoom = 0; // index into ZOOMS; 0 = fit to width
  let index = new Map(); // "x,y,z" -> board record
  let owner = new Map(); // "x,y,z" -> job record

  const root = htmlEl(doc, "div", "spalloc-boardmap");
  const bar = htmlEl(doc, "div", "sbm-bar");
  const title = htmlEl(doc, "span", "sbm-title");
  const status = htmlEl(doc, "span", "sbm-status");
  const zoomOut = htmlEl(doc, "button", "sbm-zoom-out", "−");
  const zoomFit = htmlEl(doc, "button", "sbm-zoom-fit", "fit");
  const zoomIn = htmlEl(doc, "button", "sbm-zoom-in", "+");
  for (const [b, t] of [[zoomOut, "Zoom out"], [zoomFit, "Fit: the whole machine in view"], [zoomIn, "Zoom in"]]) {
    b.type = "button";
    b.title = t;
  }
  bar.append(title, status, zoomOut, zoomFit, zoomIn);

  const body = htmlEl(doc, "div", "sbm-body");
  const viewport = htmlEl(doc, "div", "sbm-viewport");
  const svg = svgEl(doc, "svg", { class: "sbm-svg", role: "group", "aria-label": "board map" });
  const gBoards = svgEl(doc, "g", { class: "sbm-boards" });
  const gLabels = svgEl(doc, "g", { class: "sbm-labels" });
  const gLinks = svgEl(doc, "g", { class: "sbm-links" });
  const gMarks = svgEl(doc, "g", { class: "sbm-marks" });
  svg.append(gBoards, gLabels, gLinks, gMarks);
  viewport.append(svg);

  const side = htmlEl(doc, "div", "sbm-side");
  const hover = htmlEl(doc, "div", "sbm-hover", "Hover over a board; click it for its location.");
  const answer = htmlEl(doc, "div", "sbm-answer");
  const chipForm = htmlEl(doc, "form", "sbm-chip-form");
  const legend = htmlEl(doc, "div", "sbm-legend");
  side.append(hover, answer, chipForm, legend);
  body.append(viewport, side);
  root.append(bar, body);
  el.append(root);

  function jobOf(b) {
    return owner.get(key3([b.x, b.y, b.z]));
  }

  // The hexagons are built only when the board list changes; a job change restyles them.
  let built = null;
  let hexNodes = [];
  let fold = false;
  const col = (c) => foldColumn(c, model.get("width"), fold);
  const at = (b) => hexCentre(col(b.col), b.row);

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
    applyZoom();
    drawLinks();
    drawMarks();
    drawLegend();
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

  function drawLegend() {
    legend.replaceChildren();
    const jobs = model.get("jobs") || [];
    const boards = model.get("boards") || [];
    const hl = model.get("highlight_job");
    const dead = boards.filter((b) => b.dead).length;
    const used = jobs.reduce((n, j) => n + j.boards.length, 0);
    legend.append(htmlEl(doc, "div", "sbm-summary",
      `${boards.length - dead} boards, ${used} in use, ${jobs.length} job${jobs.length === 1 ? "" : "s"}` +
      (dead ? `, ${dead} dead` : "")));
    // Many jobs: a compact grid of short rows (the full text is the row's tooltip).
    const rows = htmlEl(doc, "div", "sbm-legend-rows" + (jobs.length > COMPACT_LEGEND ? " sbm-compact" : ""));
    for (const job of jobs) {
      const row = htmlEl(doc, "div", "sbm-legend-row" + (job.mine ? " sbm-mine" : "") + (job.id === hl ? " sbm-hl" : ""));
      row.dataset.job = String(job.id);
      row.tabIndex = 0;
      row.setAttribute("role", "button");
      const swatch = htmlEl(doc, "span", "sbm-swatch", job.key);
      swatch.style.background = job.colour;
      const n = job.boards.length;
      const full = `job ${job.id} · ${job.owner}${job.mine ? " (you)" : ""} · ${n} board${n === 1 ? "" : "s"}`;
      row.title = `${full}. Click (or Enter) to outline this job's boards`;
      row.append(swatch, htmlEl(doc, "span", "sbm-legend-text", full));
      rows.append(row);
    }
    legend.append(rows);
  }

  function drawAnswer() {
    answer.replaceChildren();
    const ans = model.get("answer") || {};
    if (ans.query) answer.append(htmlEl(doc, "div", "sbm-answer-title", `Where is ${ans.query}`));
    if (ans.pending) {
      answer.append(htmlEl(doc, "div", "sbm-pending", "asking the server…"));
    } else if (ans.error) {
      answer.append(htmlEl(doc, "div", "sbm-error", ans.error));
    } else if (ans.query) {
      const table = htmlEl(doc, "table", "sbm-where");
      for (const [k, label, show] of ANSWER_ROWS) {
        // As spalloc-where-is: "Coordinates within job" only when a job holds the board.
        if (!(k in ans) || (k === "job_chip" && ans[k] === null)) continue;
        const tr = htmlEl(doc, "tr");
        tr.append(htmlEl(doc, "th", "", label),
          htmlEl(doc, "td", "", ans[k] === null ? (k === "job_id" ? "None" : "—") : show(ans[k])));
        table.append(tr);
      }
      answer.append(table);
    }
  }

  function drawChipForm() {
    chipForm.replaceChildren();
    const hl = model.get("highlight_job");
    const job = (model.get("jobs") || []).find((j) => j.id === hl);
    chipForm.hidden = !job;
    if (!job) return;
    const q = model.get("chip_query") || [0, 0];
    const xIn = htmlEl(doc, "input", "sbm-chip-x");
    const yIn = htmlEl(doc, "input", "sbm-chip-y");
    for (const [inp, v, name] of [[xIn, q[0], "x"], [yIn, q[1], "y"]]) {
      inp.type = "number";
      inp.min = "0";
      inp.value = String(v);
      inp.setAttribute("aria-label", `chip ${name}`);
    }
    const go = htmlEl(doc, "button", "sbm-chip-go", "where is");
    go.type = "submit";
    chipForm.append(htmlEl(doc, "span", "", `Chip of job ${job.id}: x `), xIn, htmlEl(doc, "span", "", " y "), yIn, go);
  }

  function applyZoom() {
    svg.style.setProperty("--sbm-zoom", String(ZOOMS[zoom]));
    zoomFit.disabled = zoom === 0;
    zoomOut.disabled = zoom === 0;
    zoomIn.disabled = zoom === ZOOMS.length - 1;
    sizeLabels();
  }

  // "fit" fills the visible height, less the bar and a legend below the map. Neither
  // depends on the map's own height, so setting the budget does not change it again.
  let fitPx = 0;
  function fitToView() {
    const notebook = el.closest ? el.closest(NOTEBOOK_VIEW) : null;
    const win = doc.defaultView;
    // Elsewhere the window; capped by the screen, since some front ends (VS Code) size the
    // outputs' frame to its content, which would let the map grow with its own budget.
    const screenH = (win && win.screen && win.screen.availHeight) || Infinity;
    const visible = notebook ? notebook.clientHeight : Math.min((win && win.innerHeight) || 0, screenH);
    const whole = root.getBoundingClientRect();
    const map = viewport.getBoundingClientRect();
    if (!visible || !whole.height || !map.height) return; // not laid out (hidden, or no layout)
    const below = side.getBoundingClientRect().top >= map.bottom - 1;
    const extra = map.top - whole.top + (below ? whole.bottom - map.bottom : 0);
    const px = fitHeight(visible, extra);
    if (px === fitPx) return;
    fitPx = px;
    root.style.setProperty("--sbm-fit-h", `${px}px`);
    sizeLabels();
  }

  // Letters a few pixels high are noise: hide them below MIN_LABEL_PX (zoom in, or hover
  // a board, to read its job).
  function sizeLabels() {
    const rect = svg.getBoundingClientRect ? svg.getBoundingClientRect() : null;
    const box = svg.viewBox && svg.viewBox.baseVal;
    const scale = rect && box && box.width ? rect.width / box.width : 0;
    root.classList.toggle("sbm-small", scale > 0 && LABEL_UNITS * scale < MIN_LABEL_PX);
  }

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
  const setZoom = (z) => () => {
    zoom = Math.max(0, Math.min(ZOOMS.length - 1, z()));
    applyZoom();
  };
  svg.addEventListener("mouseover", onOver);
  svg.addEventListener("focusin", onFocus);
  svg.addEventListener("click", onClick);
  svg.addEventListener("keydown", onKey);
  legend.addEventListener("click", onLegend);
  legend.addEventListener("keydown", onKey);
  chipForm.addEventListener("submit", onChip);
  zoomIn.addEventListener("click", setZoom(() => zoom + 1));
  zoomOut.addEventListener("click", setZoom(() => zoom - 1));
  zoomFit.addEventListener("click", setZoom(() => 0));

  const redrawHighlight = () => {
    drawBoards();
    drawChipForm();
  };
  const marksAndAnswer = () => {
    drawMarks();
    drawAnswer();
  };
  const handlers = [
    ["change:boards", drawBoards],
    ["change:jobs", redrawHighlight],
    ["change:dead_links", drawLinks],
    ["change:highlight_job", redrawHighlight],
    ["change:selected", drawMarks],
    ["change:answer", marksAndAnswer],
    ["change:chip_query", drawChipForm],
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
  // Sizes change with the notebook's width and height, the jobs (the legend) and the
  // zoom; the next frame re-fits (not inside the callback: no resize-observer loop).
  const view = doc.defaultView;
  let frame = 0;
  const relayout = () => {
    if (frame || !view || !view.requestAnimationFrame) return;
    frame = view.requestAnimationFrame(() => {
      frame = 0;
      fitToView();
      sizeLabels();
    });
  };
  const Resize = view && view.ResizeObserver;
  const resized = Resize ? new Resize(relayout) : null;
  if (resized) resized.observe(root);
  // The notebook view is found once the output is attached (after this render).
  const attached = setTimeout(() => {
    const notebook = el.closest ? el.closest(NOTEBOOK_VIEW) : null;
    if (notebook && resized) resized.observe(notebook);
    relayout();
  }, 0);

  drawStatus();
  drawBoards();
  drawChipForm();
  drawAnswer();
  watch();

  return () => {
    clearTimeout(later);
    stopSaveHook();
    clearTimeout(attached);
    if (resized) resized.disconnect();
    if (frame > 0) view.cancelAnimationFrame(frame);
    frame = -1; // no re-fit after cleanup
    watched.disconnect();
    model.off("comm_live_update", drawStatus);
    for (const [ev, fn] of handlers) model.off(ev, fn);
    root.remove(); // a re-render (e.g. hot reload) starts from an empty element
  };
}

export default { render };
