// The status panel of the job widget (an anywidget front end, no build step).
//
// It shows the summary HTML the kernel renders (`value`) and, above all, never lets a
// view that lost its kernel claim a live job: ipywidgets marks a view whose comm died
// (kernel restarted, shut down, notebook reopened from saved widget state) with the
// class `jupyter-widgets-disconnected`; the panel then hides the live rows (state, power,
// keepalive) and says the job's state is unknown here.

import { escapeHtml, isDisconnected, onNotebookSave, replaceOutputs } from "./shared.js";

export const DISCONNECTED_TEXT =
  "Disconnected from the kernel: this view no longer follows the job, so its state is " +
  "unknown here. (A kernel restart or shutdown destroys the jobs the notebook created.)";

/** Labels of the buttons whose clicks the panel acknowledges at once. */
export const ACTIONS = ["Power on", "Power off", "Reset", "Yes, destroy"];
/** Milliseconds without word from the kernel before a click is called queued. */
export const QUEUED_AFTER = 1500;

export function queuedText(label) {
  return `${label}: waiting for the kernel. It is busy (a cell is running?) and this ` +
    "front end cannot reach it meanwhile; the click is handled when it is free.";
}

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
  const progress = doc.createElement("div");
  progress.className = "spalloc-job-progress";
  progress.setAttribute("role", "status");
  root.append(note, body, progress);
  el.append(root);

  // Feedback for a click: "sent" at once, what the kernel is doing once it starts, and
  // "waiting for the kernel" if it says nothing (no subshell and a cell running).
  let pending = null;
  let timer = null;
  const say = (text) => {
    progress.textContent = text;
    progress.hidden = !text;
  };
  const onBusy = () => {
    const busy = model.get("busy") || "";
    if (busy) {
      clearTimeout(timer);
      say(busy);
    } else if (!pending) {
      say("");
    }
  };
  const onAck = () => {
    pending = null;
    clearTimeout(timer);
    say(model.get("busy") || "");
  };
  const onClick = (evt) => {
    const button = evt.target && evt.target.closest ? evt.target.closest("button") : null;
    if (!button || button.disabled) return;
    const label = button.textContent.trim();
    if (!ACTIONS.includes(label)) return;
    pending = label;
    say(`${label}: sent to the kernel\u2026`);
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (pending === label && !model.get("busy")) say(queuedText(label));
    }, QUEUED_AFTER);
  };
  let clickBox = null;
  const listen = () => {
    const box = el.closest ? el.closest(".spalloc-job-widget") : null;
    if (box && box !== clickBox) {
      if (clickBox) clickBox.removeEventListener("click", onClick, true);
      box.addEventListener("click", onClick, true);
      clickBox = box;
    }
  };
  say("");

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
  // Saved while disconnected: the output becomes the last summary, minus every live claim.
  const saveStatic = () => {
    if (!isDisconnected(el)) return;
    const copy = doc.createElement("div");
    copy.innerHTML = model.get("value") || "";
    for (const row of copy.querySelectorAll(".spalloc-live-row")) row.remove();
    const title = copy.querySelector("strong");
    const name = title ? title.textContent : "Job";
    const when = new Date().toTimeString().slice(0, 8);
    const note = `${name} \u2014 state unknown: this output lost its kernel (restart or ` +
      `shutdown) before ${when}; a restart or shutdown destroys the jobs the notebook created.`;
    replaceOutputs(model.widget_manager, model.get("root_id"), {
      "text/html": `<div><p><strong>${escapeHtml(note)}` +
        `</strong></p>${copy.innerHTML}</div>`,
      "text/plain": note,
    });
  };
  const stopSaveHook = onNotebookSave(model, saveStatic);
  model.on("change:value", draw);
  model.on("change:busy", onBusy);
  model.on("change:ack", onAck);
  model.on("comm_live_update", check);
  draw();
  check();
  listen();
  // The container is attached after this view is rendered: look again once it is.
  const later = setTimeout(() => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      observer.observe(node, { attributes: true, attributeFilter: ["class"] });
      if (node.classList && node.classList.contains("spalloc-job-widget")) break;
    }
    check();
    listen();
  }, 0);

  return () => {
    clearTimeout(later);
    clearTimeout(timer);
    stopSaveHook();
    if (clickBox) clickBox.removeEventListener("click", onClick, true);
    observer.disconnect();
    model.off("change:value", draw);
    model.off("change:busy", onBusy);
    model.off("change:ack", onAck);
    model.off("comm_live_update", check);
    root.remove();
  };
}

export default { render };
