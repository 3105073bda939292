// docs/reference/cli.md and configuration.md: "one setting given twice is exit 2". A config file that
// repeats a key literally ({"queue": 1, …, "queue": 2}, a long webtalk.ini edited at both ends) is a
// setting given twice: exit 2 naming the key and where, not a server that silently keeps the last one.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOOPBACK, MAIN, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-dupkey-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a key repeated in the config file is exit 2 naming it with its line and column", async () => {
  writeFileSync(join(dir, "webtalk.ini"), '{\n  "queue": 1,\n  "loginTimeout": 5,\n  "queue": 2\n}\n');
  // The real ports are given: a server that starts anyway runs until the bound, and the test fails.
  const result = await runToExit([process.execPath, MAIN, ...LOOPBACK, "--admin", "off"], {
    env: { PATH: process.env.PATH ?? "", HOME: dir },
    cwd: dir,
    timeoutMs: 6_000,
  }).catch((error: Error) => ({ code: -1, stdout: "", stderr: `still running: ${error.message}` }));
  expect(result.stderr).toContain("webtalk.ini:4:3");
  expect(result.stderr).toContain('"queue"');
  expect(result.code).toBe(2);
});
