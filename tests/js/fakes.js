// Stand-ins shared by the node --test suites.

/** A widget manager whose document context holds cells of `outputsPerCell` (lists of outputs). */
export function fakeNotebook(outputsPerCell) {
  const cells = outputsPerCell.map((outs) => {
    const list = [...outs];
    return { outputs: { get length() { return list.length; }, get: (j) => list[j], set: (j, v) => { list[j] = { type: v.output_type, data: v.data }; }, list } };
  });
  return { context: { model: { cells: { length: cells.length, get: (i) => cells[i] } } }, cells };
}

/**
 * A stand-in for anywidget's model: get/set/on/off/save_changes/send. `set` fires
 * `change:<key>`, `trigger` any other event; `saved`, `sent` and `listeners()` are for asserts.
 */
export function fakeModel(state) {
  const handlers = new Map();
  const model = {
    saved: 0,
    get: (k) => state[k],
    set(k, v) {
      state[k] = v;
      for (const fn of handlers.get(`change:${k}`) || []) fn();
    },
    on(ev, fn) {
      if (!handlers.has(ev)) handlers.set(ev, []);
      handlers.get(ev).push(fn);
    },
    off(ev, fn) {
      handlers.set(ev, (handlers.get(ev) || []).filter((f) => f !== fn));
    },
    trigger(ev) {
      for (const fn of handlers.get(ev) || []) fn();
    },
    save_changes() {
      model.saved += 1;
    },
    sent: [],
    send(msg) {
      model.sent.push(msg);
    },
    listeners: () => [...handlers.values()].reduce((n, l) => n + l.length, 0),
  };
  return model;
}
