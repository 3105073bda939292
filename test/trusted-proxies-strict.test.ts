// --trusted-proxies is strict like every other value: an entry with two prefixes ("10.0.0.0/8/5",
// a typo for a list) is exit 2 naming it, from the flag, the variable and the file alike, not a
// server that silently trusts 10.0.0.0/8.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOOPBACK, MAIN, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-trusted-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test.each(["10.0.0.0/8/5", "::1/128/0"])("--trusted-proxies %p is exit 2 from flag, env and file", async (bad) => {
  const file = join(dir, "c.json");
  writeFileSync(file, JSON.stringify({ trustedProxies: bad }));
  for (const [args, env] of [
    [["--trusted-proxies", bad], {}],
    [[], { WEBTALK_TRUSTED_PROXIES: bad }],
    [["--config", file], {}],
  ] as const) {
    // The real ports are given: a server that starts anyway runs until the bound, and the test fails.
    const result = await runToExit([process.execPath, MAIN, ...args, ...LOOPBACK, "--admin", "off"], {
      env: { PATH: process.env.PATH ?? "", HOME: dir, ...env },
      cwd: dir,
      timeoutMs: 6_000,
    }).catch((error: Error) => ({ code: -1, stdout: "", stderr: `still running: ${error.message}` }));
    expect(result.stderr).toContain(bad);
    expect(result.code).toBe(2);
  }
});
