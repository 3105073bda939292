// `bun run release`: webtalk for every platform, cross-compiled from this machine into dist/, with
// SHA256SUMS. A target that fails is reported and the others still build; the exit code is 1 if any failed.
// Usage: bun scripts/release.ts [--targets linux-x64,windows-x64,…] [--outdir DIR]
//
// Cross-compiling needs Bun's runtime for each other platform: Bun fetches it from the npm registry
// (@oven/bun-OS-ARCH) on first use and keeps it in ~/.bun/install/cache.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import pkg from "../package.json" with { type: "json" };

export const TARGETS = ["linux-x64", "linux-arm64", "darwin-arm64", "darwin-x64", "windows-x64"];

const root = resolve(import.meta.dir, "..");
const option = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const targets = option("--targets")?.split(",") ?? TARGETS;
const outdir = resolve(option("--outdir") ?? resolve(root, "dist"));
mkdirSync(outdir, { recursive: true });

interface Result {
  target: string;
  file?: string;
  bytes?: number;
  seconds: number;
  error?: string;
}

const results: Result[] = [];
for (const target of targets) {
  const file = resolve(outdir, `webtalk-${pkg.version}-${target}${target.startsWith("windows") ? ".exe" : ""}`);
  rmSync(file, { force: true });
  const started = performance.now();
  const build = Bun.spawnSync(
    [process.execPath, resolve(root, "scripts/build.ts"), "--target", `bun-${target}`, "--outfile", file],
    { cwd: root, stdout: "pipe", stderr: "pipe" },
  );
  const seconds = (performance.now() - started) / 1000;
  if (build.exitCode === 0) {
    results.push({ target, file, bytes: statSync(file).size, seconds });
  } else {
    const output = `${build.stderr.toString()}${build.stdout.toString()}`.trim().split("\n");
    results.push({ target, seconds, error: output.find((line) => /error/i.test(line)) ?? output.at(-1) ?? `exit ${build.exitCode}` });
  }
  const last = results.at(-1)!;
  console.log(last.error ? `FAIL ${target}: ${last.error}` : `ok   ${target}: ${basename(file)} (${mib(last.bytes!)}, ${seconds.toFixed(1)} s)`);
}

const built = results.filter((r) => r.file);
const sums = built.map((r) => `${createHash("sha256").update(readFileSync(r.file!)).digest("hex")}  ${basename(r.file!)}\n`);
writeFileSync(resolve(outdir, "SHA256SUMS"), sums.join(""));
console.log(`\n${built.length} of ${results.length} targets built into ${outdir}, sums in SHA256SUMS`);
for (const r of results.filter((r) => r.error)) console.log(`failed: ${r.target}`);
process.exit(built.length === results.length ? 0 : 1);

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
