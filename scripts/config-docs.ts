// `npm run docs:config`: writes docs/reference/configuration.md from the config schema.
// Usage: bun scripts/config-docs.ts [--check] [--out FILE]
//   --check  write nothing; exit 1 when the file differs from what the schema gives (CI, tests)

import { readFileSync, writeFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { renderConfigReference } from "../src/config/reference.ts";

const root = resolve(import.meta.dir, "..");
const at = process.argv.indexOf("--out");
const file = at > 0 && process.argv[at + 1] ? resolve(process.argv[at + 1]!) : resolve(root, "docs/reference/configuration.md");
const shown = relative(process.cwd(), file) || file;
const page = renderConfigReference();

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {
    // a missing file differs like any other
  }
  if (current !== page) {
    console.error(`${shown} is out of date with src/config/schema.ts: run npm run docs:config`);
    process.exit(1);
  }
  console.log(`${shown} is up to date`);
} else {
  writeFileSync(file, page);
  console.log(`wrote ${shown}`);
}
