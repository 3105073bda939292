// Issue 16 (ops): pretty log lines carry a timestamp even when stdout is a pipe (every deployment);
// --trusted-proxies takes a browser's address from X-Forwarded-For only when the TCP peer is a
// trusted proxy. The "proxy" here is this test on 127.0.0.1 sending a real header on a real upgrade.

import { expect, test } from "bun:test";
import { MAIN, LOOPBACK, spawnServer } from "./process.ts";
import { within } from "./helpers.ts";

test("pretty lines start with an ISO-8601 UTC timestamp and the level", async () => {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK]);
  expect(await server.stop()).toBe(0);
  const lines = server.output().trimEnd().split("\n");
  console.log(`first pretty line: ${lines[0]}`);
  expect(lines.length).toBeGreaterThan(2);
  for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARN|ERROR|DEBUG) /);
}, 20_000);

/** Refuses one login sent through a WebSocket whose upgrade carries `X-Forwarded-For`; answers the refusal's log entry. */
async function refusedThroughProxy(flags: string[]): Promise<Record<string, unknown>> {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--log-format", "json", "--log-level", "debug", ...flags]);
  try {
    // Bun's WebSocket takes request headers: a real header on a real upgrade from 127.0.0.1.
    const ws = new WebSocket(server.publicUrl, { headers: { "X-Forwarded-For": "198.51.100.7, 203.0.113.9" } } as unknown as string[]);
    const closed = new Promise<number>((resolve) => (ws.onclose = (event) => resolve(event.code)));
    await within(new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject))), "the upgrade");
    ws.send("424242!not-the-salt");
    expect(await within(closed, "the refusal's close")).toBe(4001);
  } finally {
    expect(await server.stop()).toBe(0);
  }
  const entries = server.output().trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  const refusal = entries.find((e) => e.msg === "browser login refused");
  console.log(`refusal with ${JSON.stringify(flags)}: ${JSON.stringify(refusal)}`);
  expect(refusal).toBeDefined();
  return refusal!;
}

test("a trusted proxy's X-Forwarded-For names the browser: its right-most untrusted hop", async () => {
  const refusal = await refusedThroughProxy(["--trusted-proxies", "127.0.0.1,::1"]);
  expect(refusal).toMatchObject({ user: 424242, reason: "unknown", addr: "203.0.113.9" });
}, 20_000);

test("an untrusted peer's X-Forwarded-For is ignored (no spoofing): the socket's address is logged", async () => {
  expect((await refusedThroughProxy([])).addr).toBe("127.0.0.1");
  expect((await refusedThroughProxy(["--trusted-proxies", "10.0.0.0/8"])).addr).toBe("127.0.0.1");
}, 30_000);
