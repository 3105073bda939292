// `bun run build:client`: the backend client as plain JavaScript for Node.js, dist/client/backend.js,
// which package.json's "webtalk/client" export hands to Node (Bun imports the TypeScript directly).
// Usage: bun scripts/build-client.ts [--outfile PATH]

import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const at = process.argv.indexOf("--outfile");
const outfile = resolve(at > 0 ? process.argv[at + 1]! : resolve(root, "dist/client/backend.js"));

const build = Bun.spawnSync(
  [process.execPath, "build", "--target=node", "--format=esm", resolve(root, "src/client/backend.ts"), "--outfile", outfile],
  { cwd: root, stdout: "inherit", stderr: "inherit" },
);
if (build.exitCode !== 0) process.exit(build.exitCode ?? 1);
console.log(`built ${outfile}`);
