// The side panel beside the map: the legend of jobs (a click outlines one), the server's
// where-is answer for the last question, and the form asking about a chip of the
// highlighted job.

import { htmlEl } from "./mapdom.js";

// More jobs than this and the legend becomes a compact grid.
const COMPACT_LEGEND = 8;

const fmt = (t) => (t ? `(${t.join(", ")})` : "—");

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

/** The legend: a summary line, then one row per job. */
export function drawLegend(model, doc, legend) {
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

/** The where-is answer (or that it is pending, or its error). */
export function drawAnswer(model, doc, answer) {
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

/** The chip form of the highlighted job (hidden when no job is highlighted). */
export function drawChipForm(model, doc, chipForm) {
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
