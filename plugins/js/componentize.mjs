// Builds a JavaScript evaluator into a docket component through
// componentize-js's API (its CLI needs the network), with every WASI
// feature the evaluator does not need stripped, so the component imports
// nothing docket does not provide.
//
//   node componentize.mjs <entry.js> <wit dir> <out.wasm>
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [sourcePath, witPath, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node componentize.mjs <entry.js> <wit dir> <out.wasm>");
  process.exit(2);
}
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName: "evaluator",
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
