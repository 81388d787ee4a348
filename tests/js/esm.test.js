// The join of tests/js/esm.js (the same as widgets/_esm.py): several local modules become
// one standalone module, each once, before the first module that imports it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { loadWidget, read, widgetSource } from "./esm.js";

const SHARED = "export const helper = 1;\n";
const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A directory of modules `files` (stem -> text) with shared.js, as a URL ending in "/". */
function modules(files) {
  const dir = mkdtempSync(join(tmpdir(), "esm-"));
  dirs.push(dir);
  for (const [stem, text] of Object.entries({ shared: SHARED, ...files })) {
    writeFileSync(join(dir, `${stem}.js`), text);
  }
  return pathToFileURL(`${dir}/`);
}

test("local modules are joined once each, dependencies first, into a module that runs", async () => {
  const dir = modules({
    geometry: "export const R = 10;\nexport function size() {\n  return R;\n}\n",
    drawing: 'import { R, size } from "./geometry.js";\nimport { helper } from "./shared.js";\n' +
      "export const drawn = R + size() + helper;\n",
    widget: 'import { helper } from "./shared.js";\nimport { size } from "./geometry.js";\n' +
      'import {\n  drawn,\n} from "./drawing.js";\n\nexport default { drawn, size, helper };\n',
  });
  const joined = widgetSource("widget.js", dir);
  assert.doesNotMatch(joined, /^import /m);
  assert.equal(joined.split(SHARED).length, 2, "shared.js once");
  assert.equal(joined.split("export const R = 10;").length, 2, "geometry.js once");
  assert.ok(joined.indexOf(SHARED) < joined.indexOf("export const R"));
  assert.ok(joined.indexOf("export const R") < joined.indexOf("drawn = R"));
  const mod = await loadWidget("widget.js", dir);
  assert.equal(mod.default.drawn, 21);
  assert.equal(mod.R, 10, "the joined modules' exports stay exported");
});

const refused = [
  ["a missing local module", { widget: 'import { helper } from "./shared.js";\nimport { x } from "./gone.js";\nexport default {};\n' },
    /widget\.js imports \.\/gone\.js, which does not exist/],
  ["a name the module does not define", { widget: 'import { nothing } from "./shared.js";\nexport default {};\n' },
    /imports nothing from \.\/shared\.js, which does not define it/],
  ["a name defined twice", {
    widget: 'import { helper } from "./shared.js";\nimport { a } from "./a.js";\nexport default {};\n',
    a: "export const a = 1;\nconst helper = 2;\n",
  }, /joined modules declare helper more than once/],
  ["a cycle", {
    widget: 'import { helper } from "./shared.js";\nimport { a } from "./a.js";\nexport default {};\n',
    a: 'import { b } from "./b.js";\nexport const a = 1;\n',
    b: 'import { a } from "./a.js";\nexport const b = 1;\n',
  }, /cycle: a\.js -> b\.js -> a\.js/],
  ["a default import", { widget: 'import { helper } from "./shared.js";\nimport a from "./a.js";\nexport default {};\n' },
    /unsupported local import/],
  ["no shared.js", { widget: "export default {};\n" }, /must import \.\/shared\.js/],
];
for (const [what, files, error] of refused) {
  test(`the join refuses ${what}`, () => {
    assert.throws(() => widgetSource("widget.js", modules(files)), error);
  });
}

test("the board map is its entry module joined with the map modules", async () => {
  const joined = widgetSource("boardmap.js");
  for (const name of ["maphex.js", "mapdom.js", "mapboards.js", "mapside.js", "mapzoom.js", "mapinput.js"]) {
    const code = read(name).split(/^import \{[^}]*\} from "\.\/[\w.-]+\.js";\n/m).pop();
    assert.equal(joined.split(code).length, 2, `${name} once`);
  }
  const mod = await loadWidget("boardmap.js");
  assert.equal(typeof mod.default.render, "function");
});
