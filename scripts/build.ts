// `bun run build`: one self-contained executable, dist/webtalk, that needs neither Bun nor node_modules.
// Usage: bun scripts/build.ts [--outfile PATH]

import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const at = process.argv.indexOf("--outfile");
const outfile = resolve(at > 0 ? process.argv[at + 1]! : resolve(root, "dist/webtalk"));

const build = Bun.spawnSync(
  [process.execPath, "build", "--compile", "--minify", "--bytecode", "--format=esm", resolve(root, "src/main.ts"), "--outfile", outfile],
  { cwd: root, stdout: "inherit", stderr: "inherit" },
);
if (build.exitCode !== 0) process.exit(build.exitCode ?? 1);
console.log(`built ${outfile}`);
