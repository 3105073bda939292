// Issue 16 (ops): /livez is liveness, /readyz (and its alias /healthz) readiness. On SIGTERM readiness
// turns 503 first while the admin port and the public and control ports stay up for --drain-delay, so
// a load balancer takes the instance out before its connections go; then the process exits 0.

import { expect, test } from "bun:test";
import { ControlClient, within } from "./helpers.ts";
import { MAIN, LOOPBACK, runToExit, spawnServer } from "./process.ts";

async function status(base: string, path: string): Promise<number> {
  const response = await within(fetch(`${base}${path}`), path, 5_000);
  await response.arrayBuffer();
  return response.status;
}

test("/livez 200 throughout; SIGTERM makes /readyz and /healthz 503 while the ports stay open for --drain-delay, then exit 0", async () => {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--drain-delay", "3"]);
  const admin = server.adminUrl!;
  try {
    expect(await status(admin, "/livez")).toBe(200);
    expect(await status(admin, "/readyz")).toBe(200);
    expect(await status(admin, "/healthz")).toBe(200);
    server.proc.kill("SIGTERM");
    // Bounded poll: the first answer after the signal must already be 503 for readiness.
    let ready = 200;
    for (let tries = 0; ready === 200 && tries < 100; tries++) {
      ready = await status(admin, "/readyz");
      if (ready === 200) await Bun.sleep(20);
    }
    expect(ready).toBe(503);
    expect(await status(admin, "/healthz")).toBe(503);
    expect(await status(admin, "/livez")).toBe(200);
    // Still draining, not gone: the control port answers a new connection.
    const ctl = await ControlClient.connect(server.privatePort);
    expect(await ctl.call("[ping]")).toBe("[ok] pong");
    ctl.close();
    // And the public port still upgrades a browser.
    const ws = new WebSocket(server.publicUrl);
    await within(new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject))), "an upgrade while draining");
    ws.close();
    expect(await within(server.proc.exited, "the server to exit", 20_000)).toBe(0);
  } finally {
    await server.stop();
  }
}, 40_000);

test("/livez is 200 while the state cannot be reached (a Redis that never answers) and /readyz is 503", async () => {
  const blackHole = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const admin = `http://127.0.0.1:${probe.port}`;
  probe.stop(true);
  try {
    const server = runToExit(["bun", MAIN, ...LOOPBACK, "--admin", admin.slice(7), "--redis", `redis://127.0.0.1:${blackHole.port}`], { timeoutMs: 20_000 });
    let live: number | undefined;
    for (let tries = 0; live === undefined && tries < 200; tries++) {
      live = await status(admin, "/livez").catch(() => undefined);
      if (live === undefined) await Bun.sleep(20);
    }
    expect(live).toBe(200);
    expect(await status(admin, "/readyz")).toBe(503);
    await server;
  } finally {
    blackHole.stop(true);
  }
}, 30_000);
