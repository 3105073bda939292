// `webtalk ctl` reads the server's own WEBTALK_* variables (cli.md: "one environment serves both"), so
// it owes them the server's strictness: a bad value is exit 2 naming it, and a mistyped name is a
// warning naming the one meant. Otherwise `WEBTALK_PRIVAT=staging:12344 webtalk ctl killuser 7` quietly
// acts on whatever listens on the default 127.0.0.1:12344, and WEBTALK_PRIVATE_TLS=maybe quietly
// speaks plain TCP where the server itself refuses "maybe". Real server, real ctl processes.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { LOOPBACK, MAIN, runToExit, spawnServer, type Spawned } from "./process.ts";

let server: Spawned;
beforeAll(async () => {
  server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--admin", "off", "--secret", "s3cret"]);
});
afterAll(async () => {
  await server.stop();
});

const ctl = (args: string[], env: Record<string, string>) =>
  runToExit([process.execPath, MAIN, "ctl", ...args], { env: { PATH: process.env.PATH ?? "", ...env }, timeoutMs: 15_000 });

test("WEBTALK_PRIVATE_TLS=maybe is exit 2 naming it, as the server's own is", async () => {
  const result = await ctl(["ping"], { WEBTALK_PRIVATE: `127.0.0.1:${server.privatePort}`, WEBTALK_SECRET: "s3cret", WEBTALK_PRIVATE_TLS: "maybe" });
  expect(result.stderr).toContain("WEBTALK_PRIVATE_TLS");
  expect(result.code).toBe(2);
});

test("a mistyped WEBTALK_* variable is a warning naming the one meant", async () => {
  const result = await ctl(["ping"], { WEBTALK_PRIVATE: `127.0.0.1:${server.privatePort}`, WEBTALK_SECRT: "s3cret" });
  expect(result.stderr).toContain("WEBTALK_SECRT");
  expect(result.stderr).toContain("WEBTALK_SECRET");
});
