// `npm test` run from a shell that holds WEBTALK_* settings: docs/operations/systemd.md tells the
// operator to `set -a; . /etc/webtalk.env; set +a` in an admin shell, and the Docker image sets
// WEBTALK_PUBLIC/PRIVATE/ADMIN/DATA. The suite must not inherit them: a test server that picks up
// WEBTALK_REDIS joins (and writes into) whatever cluster the shell points at, one that picks up
// WEBTALK_SECRET refuses the test's own control connections. A nested `bun test` of a few files that
// spawn servers, with such an environment, must pass exactly as without it. No Redis is needed:
// WEBTALK_REDIS points at a closed port, so inheriting it shows as a server that cannot start.

import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runToExit } from "./process.ts";

test("a shell's WEBTALK_REDIS, WEBTALK_SECRET, WEBTALK_DATA, WEBTALK_LOG_FORMAT do not leak into the suite's servers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-shell-env-"));
  try {
    const shell = {
      ...process.env,
      WEBTALK_REDIS: "redis://127.0.0.1:1/0",
      WEBTALK_SECRET: "the-production-secret",
      WEBTALK_DATA: join(dir, "production.db"),
      WEBTALK_LOG_FORMAT: "json",
      WEBTALK_PRIVATE: "127.0.0.1:1",
    };
    const files = ["./test/logs-ops.test.ts", "./test/probes-drain.test.ts"];
    const result = await runToExit([process.execPath, "test", "--timeout", "30000", ...files], { env: shell, cwd: ROOT, timeoutMs: 120_000 });
    const failed = (result.stdout + result.stderr).split("\n").filter((line) => line.startsWith("(fail)"));
    expect(failed).toEqual([]);
    expect(result.code).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 130_000);
