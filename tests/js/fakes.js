// Stand-ins shared by the node --test suites.

/** A widget manager whose document context holds cells of `outputsPerCell` (lists of outputs). */
export function fakeNotebook(outputsPerCell) {
  const cells = outputsPerCell.map((outs) => {
    const list = [...outs];
    return { outputs: { get length() { return list.length; }, get: (j) => list[j], set: (j, v) => { list[j] = { type: v.output_type, data: v.data }; }, list } };
  });
  return { context: { model: { cells: { length: cells.length, get: (i) => cells[i] } } }, cells };
}
