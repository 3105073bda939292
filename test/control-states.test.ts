// The control connection's states, seen from outside: what a connection that is gone may no longer do.

import { expect, test } from "bun:test";
import { connect } from "node:net";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, startTestServer, within } from "./helpers.ts";
import { haveRedis, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis();

async function users(ctl: ControlClient): Promise<number> {
  return Number(/users=(\d+)/.exec(await ctl.ok("[stats]"))![1]);
}

// With Redis every command is asynchronous, so frames wait in the backlog behind the one in flight:
// once the peer is gone, none of them may still run.
test.skipIf(!haveRedis)("a connection closed with frames waiting runs none of them", async () => {
  const server = await startTestServer({ redis: redis.url, redisPrefix: uniquePrefix("states") });
  try {
    const ctl = await ControlClient.connect(server.private.port);
    const before = await users(ctl);
    const sent = 5_000;
    const socket = connect({ host: "127.0.0.1", port: server.private.port });
    await within(new Promise((resolve) => socket.once("connect", resolve)), "the doomed connection");
    socket.write(encodeFrames(Array.from({ length: sent }, () => "[newuser]")), () => socket.destroy());
    await Bun.sleep(500);
    const settled = (await users(ctl)) - before;
    await Bun.sleep(500);
    const later = (await users(ctl)) - before;
    expect(later).toBe(settled);
    expect(later).toBeLessThan(sent);
    ctl.close();
  } finally {
    await server.stop();
  }
}, 30_000);

function stat(stats: string, key: string): number {
  return Number(new RegExp(`\\b${key}=(\\d+)`).exec(stats)![1]);
}

// Issue 14 item 4, as reported with --redis: 50 connections doing [newuser][listen] and closing left
// listeners=50 for good. A connection's [listen] must go with it, whatever was still in flight.
for (const mode of ["memory", "redis"] as const) {
  test.skipIf(mode === "redis" && !haveRedis)(`${mode}: 50 connections that pipeline [newuser][listen] and close leave no listener behind`, async () => {
    const server = await startTestServer(mode === "redis" ? { redis: redis.url, redisPrefix: uniquePrefix("states") } : {});
    try {
      const ctl = await ControlClient.connect(server.private.port);
      const baseline = stat(await ctl.ok("[stats]"), "control_connections");
      const doomed = Array.from({ length: 50 }, () => connect({ host: "127.0.0.1", port: server.private.port }));
      await within(Promise.all(doomed.map((s) => new Promise((resolve) => s.once("connect", resolve)))), "50 connections");
      for (const socket of doomed) socket.end(encodeFrames(["[newuser]", "[listen]"]));
      await within(
        (async () => {
          while (stat(await ctl.ok("[stats]"), "control_connections") !== baseline) await Bun.sleep(20);
        })(),
        "the 50 connections to be gone",
      );
      // Whatever they had in flight has had time to finish: still no listener of theirs.
      await Bun.sleep(300);
      const stats = await ctl.ok("[stats]");
      expect(stat(stats, "listeners")).toBe(0);
      expect(stat(stats, "control_connections")).toBe(baseline);
      ctl.close();
    } finally {
      await server.stop();
    }
  }, 30_000);
}
