// Issue 16: "`webtalk --version` prints version, Bun version and commit". The Docker build context has
// no .git (.dockerignore) and node:22-bookworm-slim has no git, so scripts/build.ts can only learn the
// commit from the build: deploy/Dockerfile must take it as a build argument (ARG WEBTALK_COMMIT, given
// with `docker build --build-arg WEBTALK_COMMIT=$(git rev-parse --short HEAD)`) and the build must use it.
// Checked without a Docker daemon: exactly the files the build stage COPYs, no .git, the ARG's value in
// the environment as Docker gives it to RUN, then the binary's --version.

import { expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runToExit } from "./process.ts";

const dockerfile = readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8").replace(/\\\n/g, " ");
const buildStage = dockerfile.split(/^FROM /m)[1] ?? "";

test("Dockerfile: the build stage declares ARG WEBTALK_COMMIT", () => {
  expect(buildStage).toMatch(/^ARG WEBTALK_COMMIT\b/m);
});

test("a build from the build stage's files alone, outside git, names the commit given as WEBTALK_COMMIT", async () => {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-docker-commit-"));
  try {
    for (const [, sources] of buildStage.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      for (const source of sources!.trim().split(/\s+/).slice(0, -1)) cpSync(join(ROOT, source), join(dir, source), { recursive: true });
    }
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    // PATH without git, as in node:22-bookworm-slim: only Bun's own directory.
    const env = { PATH: join(ROOT, "node_modules/.bin"), HOME: dir, WEBTALK_COMMIT: "abc1234" };
    const built = await runToExit([process.execPath, "scripts/build.ts"], { cwd: dir, env, timeoutMs: 180_000 });
    expect(built.code, built.stderr).toBe(0);
    const version = await runToExit([join(dir, "dist/webtalk"), "--version"], { cwd: dir, env: { PATH: "/nonexistent" } });
    expect(version.stdout).toContain("commit abc1234");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 200_000);
