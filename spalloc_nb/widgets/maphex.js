// Geometry of the board map: where each board's hexagon, its link edges and its chips
// lie in SVG units. Pure functions of the layout cells boardmap.py sends (no DOM).

/** Hexagon circumradius in SVG units. */
export const R = 10;
const SQRT3 = Math.sqrt(3);
// Centroid of the 48 chips of a SpiNN-5 board, in board-local chip coordinates.
const CENTROID = [11 / 3, 10 / 3];

/** Centre of a board's hexagon from its layout cell (col, row in half-hex units). */
export function hexCentre(col, row) {
  return [1.5 * R * col, (SQRT3 / 2) * R * row];
}

/** Machines with at least this many boards are drawn folded into a rectangle. */
export const FOLD_MIN_BOARDS = 100;

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
export function corner(c, i, radius = R) {
  const a = (Math.PI / 3) * i;
  return [c[0] + radius * Math.cos(a), c[1] - radius * Math.sin(a)];
}

/** The two corners of the edge a board link leaves through (link 0 = east, lower right). */
export function linkEdge(c, link, radius = R) {
  return [corner(c, (link + 5) % 6, radius), corner(c, link % 6, radius)];
}

/** Layout-cell offsets of the hexagon across each link (same order as the links). */
export const LINK_STEP = [[1, 1], [1, -1], [0, -2], [-1, -1], [-1, 1], [0, 2]];

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

/** The key of a board's (x, y, z) triple in the maps of boards and jobs. */
export const key3 = (b) => `${b[0]},${b[1]},${b[2]}`;

/** An SVG `points` attribute from a list of [x, y]. */
export const points = (pts) => pts.map((p) => `${p[0].toFixed(2)},${p[1].toFixed(2)}`).join(" ");
