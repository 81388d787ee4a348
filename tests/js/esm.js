// Loads a widget's ES module as anywidget gets it from Python (spalloc_nb/widgets/_esm.py):
// the widget file with shared.js's text in place of its `import ... from "./shared.js";`.
// Loaded as a data: URL so the text is treated as an ES module whatever the surrounding
// package.json says (the widget directory has none).
import { readFileSync } from "node:fs";

const WIDGETS = new URL("../../spalloc_nb/widgets/", import.meta.url);
const IMPORT = /^import \{[^}]*\} from "\.\/shared\.js";\n/gm;

export const read = (name) => readFileSync(new URL(name, WIDGETS), "utf8");

/** The joined module text of widget file `name` (the same join as widget_esm in Python). */
export function widgetSource(name) {
  const source = read(name);
  const found = source.match(IMPORT) || [];
  if (found.length !== 1) throw new Error(`${name} must import ./shared.js once`);
  return source.replace(IMPORT, () => read("shared.js"));
}

const load = (text) => import(`data:text/javascript;base64,${Buffer.from(text).toString("base64")}`);

/** The widget module `name`, joined with shared.js. */
export const loadWidget = (name) => load(widgetSource(name));
/** shared.js on its own. */
export const loadShared = () => load(read("shared.js"));
