// `webtalk ctl`'s own flags and help, held to the same promises as the server's (issue 16): a switch
// takes only true|false|1|0|yes|no (flag and variable alike), anything else is exit 2 naming it; help
// on a pipe has no colour codes and no line over 100 columns. Real server, ctl as a subprocess.

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { startTestServer } from "./helpers.ts";
import { MAIN, runToExit } from "./process.ts";

let server: Webtalk;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

const ctl = (args: string[], env: Record<string, string> = {}) =>
  runToExit([process.execPath, MAIN, "ctl", ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", WEBTALK_PRIVATE: `127.0.0.1:${server.private.port}`, ...env },
    timeoutMs: 15_000,
  });

test.each(["no", "0", "false"])("ctl ping --tls=%s to a plain control port connects without TLS: pong", async (value) => {
  const result = await ctl(["ping", `--tls=${value}`]);
  expect(result.stderr).toBe("");
  expect(result.stdout).toBe("pong\n");
  expect(result.code).toBe(0);
});

test("ctl ping --tls=maybe is exit 2 naming --tls (not a TLS connection attempt)", async () => {
  const result = await ctl(["ping", "--tls=maybe"]);
  expect(result.stderr).toContain("--tls");
  expect(result.stderr).toContain("maybe");
  expect(result.code).toBe(2);
});

test("WEBTALK_PRIVATE_TLS=maybe is exit 2 naming the variable (not silently plain TCP)", async () => {
  const result = await ctl(["ping"], { WEBTALK_PRIVATE_TLS: "maybe" });
  expect(result.stderr).toContain("WEBTALK_PRIVATE_TLS");
  expect(result.code).toBe(2);
});

test.each([[["--help"]], [["whisper", "--help"]], [["listen", "--help"]]])(
  "ctl %p on a pipe: no colour codes, no line over 100 columns",
  async (args) => {
    const result = await ctl(args);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("\x1b[");
    const widest = Math.max(...result.stdout.split("\n").map((line) => [...line.replaceAll(/\x1b\[[0-9;]*m/g, "")].length));
    expect(widest).toBeLessThanOrEqual(100);
  },
);

test.each([[["ping", "--secret"]], [["ping", "--secret="]]])("ctl %p (no secret given) is exit 2 naming --secret, not an empty [auth]", async (args) => {
  const result = await ctl(args, { WEBTALK_SECRET: "s3cret" });
  expect(result.stderr).toContain("--secret");
  expect(result.stderr).not.toContain("authentication failed");
  expect(result.code).toBe(2);
});
