// How big the map is drawn: the zoom steps of the title bar's buttons, "fit" (the whole
// widget, legend included, within the notebook's visible height), and hiding job letters
// too small to read. Re-fits on the next frame whenever the widget or notebook resizes.

const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8];
const LABEL_UNITS = 6; // the job letters' font size in SVG units (boardmap.css)
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
 * The zoom and fit of the map in `parts` (the skeleton of mapdom.js) shown in `el`.
 *
 * Returns `applyZoom` (after the boards are redrawn), `observe` (start following sizes)
 * and `stop` (the cleanup: no re-fit after it).
 */
export function mapSizing(el, parts) {
  const { root, svg, viewport, side, zoomIn, zoomOut, zoomFit } = parts;
  const doc = el.ownerDocument;
  let zoom = 0; // index into ZOOMS; 0 = fit to width

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

  const setZoom = (z) => () => {
    zoom = Math.max(0, Math.min(ZOOMS.length - 1, z()));
    applyZoom();
  };
  zoomIn.addEventListener("click", setZoom(() => zoom + 1));
  zoomOut.addEventListener("click", setZoom(() => zoom - 1));
  zoomFit.addEventListener("click", setZoom(() => 0));

  // Sizes change with the notebook's width and height, the jobs (the legend) and the
  // zoom; the next frame re-fits (not inside the callback: no resize-observer loop).
  const view = doc.defaultView;
  let frame = 0;
  let resized = null;
  let attached = 0;
  const relayout = () => {
    if (frame || !view || !view.requestAnimationFrame) return;
    frame = view.requestAnimationFrame(() => {
      frame = 0;
      fitToView();
      sizeLabels();
    });
  };

  function observe() {
    const Resize = view && view.ResizeObserver;
    resized = Resize ? new Resize(relayout) : null;
    if (resized) resized.observe(root);
    // The notebook view is found once the output is attached (after this render).
    attached = setTimeout(() => {
      const notebook = el.closest ? el.closest(NOTEBOOK_VIEW) : null;
      if (notebook && resized) resized.observe(notebook);
      relayout();
    }, 0);
  }

  function stop() {
    clearTimeout(attached);
    if (resized) resized.disconnect();
    if (frame > 0) view.cancelAnimationFrame(frame);
    frame = -1; // no re-fit after cleanup
  }

  return { applyZoom, observe, stop };
}
