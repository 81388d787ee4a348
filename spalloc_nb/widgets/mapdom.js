// The board map's elements: small builders of SVG and HTML nodes, and the widget's
// skeleton (title bar with the zoom buttons, the map, and the side panel).

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element `name` with attributes `attrs`. */
export function svgEl(doc, name, attrs = {}) {
  const node = doc.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** An HTML element `name`, with a class and text when given. */
export function htmlEl(doc, name, className, text) {
  const node = doc.createElement(name);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Build the widget's elements into `el`; returns them by name. */
export function buildSkeleton(doc, el) {
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
  return {
    root, title, status, zoomOut, zoomFit, zoomIn, viewport, svg,
    gBoards, gLabels, gLinks, gMarks, side, hover, answer, chipForm, legend,
  };
}
