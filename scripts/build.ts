// `bun run build`: one self-contained executable, dist/webtalk, that needs neither Bun nor node_modules.
// Usage: bun scripts/build.ts [--outfile PATH] [--target bun-OS-ARCH]   (the target defaults to this machine)

import { resolve } from "node:path";
import { gitCommit } from "../src/cli/version.ts";

const root = resolve(import.meta.dir, "..");
const option = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const outfile = resolve(option("--outfile") ?? resolve(root, "dist/webtalk"));
const target = option("--target");
// `webtalk --version` names the commit it was built from: WEBTALK_COMMIT when given (a Docker build,
// whose context has no .git: deploy/Dockerfile's ARG), else the checkout's; else "unknown".
const commit = process.env.WEBTALK_COMMIT || gitCommit(root) || "unknown";

const build = Bun.spawnSync(
  [
    process.execPath,
    "build",
    "--compile",
    "--minify",
    "--bytecode",
    "--format=esm",
    `--define=WEBTALK_COMMIT=${JSON.stringify(commit)}`,
    ...(target ? [`--target=${target}`] : []),
    resolve(root, "src/main.ts"),
    "--outfile",
    outfile,
  ],
  { cwd: root, stdout: "inherit", stderr: "inherit" },
);
if (build.exitCode !== 0) process.exit(build.exitCode ?? 1);
console.log(`built ${outfile}`);
