// Loads a widget's ES module as anywidget gets it from Python (spalloc_nb/widgets/_esm.py):
// the widget file with each `import { ... } from "./x.js";` of a local file replaced by
// that file's text (joined the same way), each file once, before the first file that
// imports it. Loaded as a data: URL so the text is treated as an ES module whatever the
// surrounding package.json says (the widget directory has none).
import { existsSync, readFileSync } from "node:fs";

const WIDGETS = new URL("../../spalloc_nb/widgets/", import.meta.url);
const IMPORT = /^import \{([^}]*)\} from "\.\/([\w.-]+\.js)";\n/gm;
const OTHER_LOCAL_IMPORT = /^import\b[^;]*?["']\.\.?\//m;
const DECLARATION = /^(?:export\s+)?(?:async\s+)?(?:function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)/gm;
const EXPORT_DEFAULT = /^export default\b/m;

/** The text of a file of the widget directory, or of `dir` when given. */
export const read = (name, dir = WIDGETS) => readFileSync(new URL(name, dir), "utf8");

const declared = (text) => [...text.matchAll(DECLARATION)].map((m) => m[1]);

function join(name, importer, done, stack, dir) {
  if (stack.includes(name)) {
    throw new Error(`local imports form a cycle: ${[...stack.slice(stack.indexOf(name)), name].join(" -> ")}`);
  }
  if (done.has(name)) return "";
  if (!existsSync(new URL(name, dir))) {
    throw new Error(`${importer ? `${importer} imports ./${name}` : `widget module ${name}`}, which does not exist`);
  }
  const source = read(name, dir);
  if (importer !== null && EXPORT_DEFAULT.test(source)) {
    throw new Error(`${name} is imported by ${importer} but has its own \`export default\``);
  }
  stack.push(name);
  const body = source.replace(IMPORT, (_all, clause, dep) => {
    const wanted = clause.split(",").map((s) => s.trim()).filter(Boolean);
    for (const w of wanted) {
      if (!/^[A-Za-z_$][\w$]*$/.test(w)) throw new Error(`${name}: cannot join \`${w}\` from ./${dep} (plain names only)`);
    }
    const text = join(dep, name, done, stack, dir);
    const defined = new Set(declared(read(dep, dir)));
    const missing = wanted.filter((w) => !defined.has(w));
    if (missing.length) throw new Error(`${name} imports ${missing.join(", ")} from ./${dep}, which does not define it`);
    return text;
  });
  stack.pop();
  const other = body.match(OTHER_LOCAL_IMPORT);
  if (other) throw new Error(`${name}: unsupported local import \`${body.slice(other.index).split("\n")[0]}\``);
  done.add(name);
  return body;
}

/**
 * The joined module text of widget file `name` (the same join as widget_esm in Python);
 * `dir` (a URL ending in "/") is the directory of the modules, the widgets' by default.
 */
export function widgetSource(name, dir = WIDGETS) {
  if (!existsSync(new URL(name, dir))) throw new Error(`widget module ${name}, which does not exist`);
  if (!EXPORT_DEFAULT.test(read(name, dir))) throw new Error(`${name} is not a widget module (no \`export default\`)`);
  const done = new Set();
  const joined = join(name, null, done, [], dir);
  if (!done.has("shared.js")) throw new Error(`${name} must import ./shared.js`);
  const counts = new Map();
  for (const d of declared(joined)) counts.set(d, (counts.get(d) || 0) + 1);
  const dupes = [...counts].filter(([, n]) => n > 1).map(([d]) => d).sort();
  if (dupes.length) throw new Error(`${name}: joined modules declare ${dupes.join(", ")} more than once`);
  return joined;
}

const load = (text) => import(`data:text/javascript;base64,${Buffer.from(text).toString("base64")}`);

/** The widget module `name`, joined with the local modules it imports. */
export const loadWidget = (name, dir = WIDGETS) => load(widgetSource(name, dir));
/** shared.js on its own. */
export const loadShared = () => load(read("shared.js"));
