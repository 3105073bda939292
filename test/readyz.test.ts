// Issue 14: `GET /readyz` on the admin address says whether to send traffic to this instance: 503 with
// a one-line reason while the state is not open yet, while it is unhealthy, and once shutdown has
// begun; 200 `ready` otherwise. End to end, with real server processes. (The full-disk case is in
// test/disk-full.test.ts, which has the tmpfs.)

import { expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { ControlClient, within } from "./helpers.ts";
import { MAIN, LOOPBACK, runToExit, spawnServer } from "./process.ts";

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

async function readyz(base: string): Promise<[number, string]> {
  const response = await within(fetch(`${base}/readyz`), "/readyz");
  return [response.status, await response.text()];
}

test("/readyz is 503 'starting' while the state opens (a Redis that never answers)", async () => {
  const blackHole: TCPSocketListener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const admin = `http://127.0.0.1:${freePort()}`;
  try {
    const server = runToExit(
      ["bun", MAIN, ...LOOPBACK, "--admin", admin.slice("http://".length), "--redis", `redis://127.0.0.1:${blackHole.port}`],
      { timeoutMs: 20_000 },
    );
    let answer: [number, string] | undefined;
    for (let tries = 0; answer === undefined && tries < 200; tries++) {
      answer = await readyz(admin).catch(() => undefined);
      if (answer === undefined) await Bun.sleep(20);
    }
    expect(answer).toBeDefined();
    const [status, body] = answer!;
    expect(status).toBe(503);
    expect(body).toMatch(/^not ready: starting[^\n]*\n$/);
    // /healthz: not able to serve either.
    expect((await within(fetch(`${admin}/healthz`), "/healthz")).status).toBe(503);
    expect((await server).code).not.toBe(0);
  } finally {
    blackHole.stop(true);
  }
}, 30_000);

test("/readyz is 200 once the state is open, and 503 'shutting down' from SIGTERM on, while draining", async () => {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--shutdown-timeout", "5"]);
  try {
    expect(await readyz(server.adminUrl!)).toEqual([200, "ready\n"]);
    // A backend still sending keeps the control port draining until it goes quiet (or the timeout).
    const ctl = await ControlClient.connect(server.privatePort);
    expect(await ctl.call("[ping]")).toBe("[ok] pong");
    let sending = true;
    const pings = (async () => {
      while (sending) {
        await ctl.call("[ping]").catch(() => (sending = false));
        await Bun.sleep(20);
      }
    })();
    server.proc.kill("SIGTERM");
    let answer: [number, string] = [0, ""];
    for (let tries = 0; answer[0] !== 503 && tries < 100; tries++) {
      answer = await readyz(server.adminUrl!);
      if (answer[0] !== 503) await Bun.sleep(20);
    }
    expect(answer).toEqual([503, "not ready: shutting down\n"]);
    expect(sending).toBe(true); // still draining when /readyz said so
    sending = false;
    await within(pings, "the pings to stop");
    ctl.close();
    expect(await within(server.proc.exited, "the server to exit")).toBe(0);
  } finally {
    if (server.proc.exitCode === null) await server.stop("SIGKILL");
  }
}, 30_000);
