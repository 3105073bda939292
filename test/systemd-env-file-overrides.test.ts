// docs/operations/systemd.md: "Every setting is a WEBTALK_* variable. Put overrides in
// /etc/webtalk.env ... then systemctl restart webtalk". The unit is run here as systemd would run it
// (no systemd PID 1 needed): its Environment= lines, then the EnvironmentFile's variables over them,
// then its ExecStart words. An override of every setting the unit sets must take effect.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAIN, ROOT, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-unit-env-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const unit = readFileSync(join(ROOT, "deploy/webtalk.service"), "utf8");
const lines = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]!);

test("/etc/webtalk.env's WEBTALK_DATA moves the data file (the unit must not pin it with a flag)", async () => {
  const unitEnv = Object.fromEntries(lines("Environment").map((assignment) => assignment.split(/=(.*)/s).slice(0, 2)));
  const elsewhere = join(dir, "elsewhere.db");
  // What an operator writes in /etc/webtalk.env; the ports on 0 so the test takes no fixed port.
  const envFile = { WEBTALK_DATA: elsewhere, WEBTALK_PUBLIC: "127.0.0.1:0", WEBTALK_PRIVATE: "127.0.0.1:0", WEBTALK_ADMIN: "127.0.0.1:0" };
  const [exec] = lines("ExecStart");
  const [binary, ...args] = exec!.split(/\s+/);
  expect(binary).toBe("/usr/local/bin/webtalk");
  // The unit's own state directory does not exist here: a --data flag naming it would fail or win.
  const server = await spawnServer([process.execPath, MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: dir, ...unitEnv, ...envFile },
    cwd: dir,
  }).catch((error: Error) => error);
  if (server instanceof Error) throw new Error(`the unit's command line with the env file's WEBTALK_DATA did not start: ${server.message}`);
  try {
    expect(server.output()).toContain(`data    ${elsewhere}`);
  } finally {
    expect(await server.stop()).toBe(0);
  }
}, 30_000);
