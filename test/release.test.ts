// `bun run release`: per-target builds into a directory with SHA256SUMS, a failing target reported
// while the others still build. Cross targets are left out here (they fetch Bun runtimes from the npm
// registry on first use); the README lists what a full release built on this machine.

import { afterAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { ROOT, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-release-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("builds each target it can, reports the one it cannot, and writes checksums", async () => {
  const release = await runToExit([process.execPath, join(ROOT, "scripts/release.ts"), "--targets", "linux-x64,plan9-x64", "--outdir", dir]);
  expect(release.code).toBe(1);
  expect(release.stdout).toMatch(new RegExp(`^ok   linux-x64: webtalk-${pkg.version}-linux-x64 \\(\\d+\\.\\d MiB, \\d+\\.\\d s\\)$`, "m"));
  expect(release.stdout).toMatch(/^FAIL plan9-x64: .*plan9/m);
  expect(release.stdout).toContain("1 of 2 targets built");

  const binary = join(dir, `webtalk-${pkg.version}-linux-x64`);
  const sum = createHash("sha256").update(readFileSync(binary)).digest("hex");
  expect(readFileSync(join(dir, "SHA256SUMS"), "utf8")).toBe(`${sum}  webtalk-${pkg.version}-linux-x64\n`);
  expect((await runToExit([binary, "--version"], { cwd: dir })).stdout).toStartWith(`webtalk ${pkg.version} (commit `);
}, 60_000);
