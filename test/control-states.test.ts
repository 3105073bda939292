// The control connection's states, seen from outside: what a connection that is gone may no longer do.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, startTestServer, within } from "./helpers.ts";
import { haveRedis, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

let redis: TestRedis | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

async function users(ctl: ControlClient): Promise<number> {
  return Number(/users=(\d+)/.exec(await ctl.ok("[stats]"))![1]);
}

// With Redis every command is asynchronous, so frames wait in the backlog behind the one in flight:
// once the peer is gone, none of them may still run.
test.skipIf(!haveRedis)("a connection closed with frames waiting runs none of them", async () => {
  const server = await startTestServer({ redis: redis!.url, redisPrefix: uniquePrefix("states") });
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
