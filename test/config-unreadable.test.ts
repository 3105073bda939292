// cli.md exit codes: "an invalid config file … is exit 2: one line on stderr naming it". A config file
// that cannot be read (a directory named webtalk.ini, e.g. a Docker bind mount of a path that did not
// exist on the host; or a file without read permission) must be that one line, not a stack trace and exit 1.

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOOPBACK, MAIN, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-unreadable-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test.each([[[]], [["--config", "webtalk.ini"]]])("a directory as the config file %p: exit 2, one line naming it", async (args) => {
  mkdirSync(join(dir, "webtalk.ini"), { recursive: true });
  const result = await runToExit([process.execPath, MAIN, ...args, ...LOOPBACK, "--admin", "off"], {
    env: { PATH: process.env.PATH ?? "", HOME: dir },
    cwd: dir,
    timeoutMs: 6_000,
  }).catch((error: Error) => ({ code: -1, stdout: "", stderr: `still running: ${error.message}` }));
  console.log(result.stderr);
  expect(result.stderr.trim().split("\n")).toHaveLength(1);
  expect(result.stderr).toContain("webtalk.ini");
  expect(result.code).toBe(2);
});
