// `webtalk ctl --help` (and `webtalk ctl` alone) piped into a file or a pager, as the server's own
// --help is: no colour codes, at most 100 columns, no trailing padding. Issue 16 asks it of "--help";
// the server's help keeps it (test/cli.test.ts), ctl's help, the one README points newcomers to, did not.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAIN, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-ctl-help-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ESC = "\x1b";
const ctl = (args: string[]) =>
  runToExit([process.execPath, MAIN, "ctl", ...args], { env: { PATH: process.env.PATH ?? "", HOME: dir }, cwd: dir, timeoutMs: 15_000 });

test.each([[["--help"]], [["whisper", "--help"]], [[]]])("webtalk ctl %p piped: no colour, ≤ 100 columns", async (args) => {
  const result = await ctl(args);
  const help = result.stdout + result.stderr;
  expect(help).toContain("webtalk ctl");
  expect(help).not.toContain(ESC);
  const widest = Math.max(...help.split("\n").map((line) => line.length));
  expect(widest).toBeLessThanOrEqual(100);
});
