// The status panel of the job widget (an anywidget front end, no build step).
//
// It shows the summary HTML the kernel renders (`value`) and, above all, never lets a
// view that lost its kernel claim a live job: ipywidgets marks a view whose comm died
// (kernel restarted, shut down, notebook reopened from saved widget state) with the
// class `jupyter-widgets-disconnected`; the panel then hides the live rows (state, power,
// keepalive) and says the job's state is unknown here.

const GONE_CLASS = "jupyter-widgets-disconnected";

/** True if `el` or one of its ancestors is a disconnected widget view. */
export function isDisconnected(el) {
  for (let node = el; node; node = node.parentElement) {
    if (node.classList && node.classList.contains(GONE_CLASS)) return true;
  }
  return false;
}

export const DISCONNECTED_TEXT =
  "Disconnected from the kernel: this view no longer follows the job, so its state is " +
  "unknown here. (A kernel restart or shutdown destroys the jobs the notebook created.)";

function render({ model, el }) {
  const doc = el.ownerDocument;
  const root = doc.createElement("div");
  root.className = "spalloc-job-status";
  const note = doc.createElement("div");
  note.className = "spalloc-job-disconnected";
  note.setAttribute("role", "status");
  note.textContent = DISCONNECTED_TEXT;
  const body = doc.createElement("div");
  body.className = "spalloc-job-body";
  root.append(note, body);
  el.append(root);

  const draw = () => {
    body.innerHTML = model.get("value") || "";
  };
  const check = () => {
    const gone = isDisconnected(el);
    root.classList.toggle("spalloc-gone", gone);
    // The whole job widget (buttons included) greys out, not only this panel.
    const box = el.closest ? el.closest(".spalloc-job-widget") : null;
    if (box) box.classList.toggle("spalloc-gone", gone);
  };
  // The class is set by ipywidgets on this view and on its container; watch both.
  const observer = new doc.defaultView.MutationObserver(check);
  for (let node = el; node; node = node.parentElement) {
    observer.observe(node, { attributes: true, attributeFilter: ["class"] });
    if (node.classList && node.classList.contains("spalloc-job-widget")) break;
  }
  model.on("change:value", draw);
  model.on("comm_live_update", check);
  draw();
  check();
  // The container is attached after this view is rendered: look again once it is.
  const later = setTimeout(() => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      observer.observe(node, { attributes: true, attributeFilter: ["class"] });
      if (node.classList && node.classList.contains("spalloc-job-widget")) break;
    }
    check();
  }, 0);

  return () => {
    clearTimeout(later);
    observer.disconnect();
    model.off("change:value", draw);
    model.off("comm_live_update", check);
    root.remove();
  };
}

export default { render };
