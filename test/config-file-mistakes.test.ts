// Config file mistakes an operator makes, run against the real server process: each must be exit 2
// with one line on stderr naming it (docs/reference/cli.md: "an unknown or mis-cased key, or one
// setting given twice, is exit 2"; exit codes: "an invalid config file ... exit 2: one line").
// The real ports are given, so a server that starts anyway is seen running (timeout), not exit 2.

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOOPBACK, MAIN, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-config-mistakes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const webtalk = (args: string[], cwd = dir) =>
  runToExit([process.execPath, MAIN, ...args, ...LOOPBACK, "--admin", "127.0.0.1:0"], {
    env: { PATH: process.env.PATH ?? "", HOME: dir },
    cwd,
    timeoutMs: 8_000,
  }).catch((error: Error) => ({ code: "still running" as const, stdout: "", stderr: error.message }));

test("the same key twice in the file is exit 2 naming it (JSON.parse would silently keep the last)", async () => {
  const file = join(dir, "twice.json");
  writeFileSync(file, '{\n  "queue": 5,\n  "queue": 6\n}\n');
  const result = await webtalk(["--config", file]);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('"queue"');
  expect(result.stderr.trim().split("\n")).toHaveLength(1);
});

test("--config naming a directory is exit 2 with one line, not a stack trace", async () => {
  const result = await webtalk(["--config", dir]);
  expect(result.stderr.trim().split("\n")).toHaveLength(1);
  expect(result.stderr).toStartWith("webtalk: ");
  expect(result.code).toBe(2);
});

test("a directory named ./webtalk.ini in the working directory is exit 2 with one line", async () => {
  const cwd = join(dir, "cwd");
  mkdirSync(join(cwd, "webtalk.ini"), { recursive: true });
  const result = await webtalk([], cwd);
  expect(result.stderr.trim().split("\n")).toHaveLength(1);
  expect(result.stderr).toContain("webtalk.ini");
  expect(result.code).toBe(2);
});
