// Issue 14 item 2: Redis loses webtalk's data under two live nodes (restarted empty, or FLUSHALL).
// No old ID may be handed out again, no whisper may reach the old user's browser, channel 1 must
// exist again, and each node says so once in its log.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConsola, type ConsolaInstance } from "consola";
import { defaultConfig, loggedIn, newUser, within, ControlClient } from "./helpers.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";
import { startServer, type Webtalk } from "../src/server.ts";

let redis: TestRedis | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

interface Node {
  server: Webtalk;
  ctl: ControlClient;
  errors: string[];
}

/** A node whose error lines are kept, so the test can count them. */
async function node(prefix: string): Promise<Node> {
  const errors: string[] = [];
  const log: ConsolaInstance = createConsola({
    level: 1,
    reporters: [{ log: (entry) => void (entry.level === 0 && errors.push(entry.args.map(String).join(" "))) }],
  });
  const server = await startServer(defaultConfig({ redis: redis!.url, redisPrefix: prefix, lease: 1 }), log);
  return { server, ctl: await ControlClient.connect(server.private.port), errors };
}

/** `[newuser]` until it succeeds (it is refused while the node re-establishes the state); every ID it got. */
async function newIds(ctl: ControlClient): Promise<number[]> {
  const ids: number[] = [];
  await within(
    (async () => {
      for (;;) {
        const reply = await ctl.call("[newuser]");
        if (reply.startsWith("[ok] ")) return void ids.push(Number(reply.slice(5).split("!")[0]));
        await Bun.sleep(50);
      }
    })(),
    "[newuser] to succeed after the data loss",
    15_000,
  );
  return ids;
}

async function lose(how: "restart" | "flushall"): Promise<void> {
  if (how === "restart") {
    await redis!.stop();
    await redis!.restart();
    return;
  }
  const l = await link(redis!);
  await l.call("FLUSHALL", []);
  l.close();
}

for (const how of ["restart", "flushall"] as const) {
  test.skipIf(!haveRedis)(`after Redis lost its data (${how}) no old ID, no whisper to the old browser, channel 1 back`, async () => {
    const prefix = uniquePrefix("loss");
    const a = await node(prefix);
    const b = await node(prefix);
    try {
      const old = await newUser(a.ctl);
      const earlier = await newUser(b.ctl);
      const [browser] = await loggedIn(a.server, a.ctl, old);
      const messages: string[] = [];
      browser.ws.addEventListener("message", (event) => messages.push(String(event.data)));

      await lose(how);

      // Both nodes, in turn: neither may hand out an ID issued before the loss.
      const ids = [...(await newIds(b.ctl)), ...(await newIds(a.ctl))];
      for (const id of ids) {
        expect(id).not.toBe(old.id);
        expect(id).not.toBe(earlier.id);
        expect(id).toBeGreaterThan(Math.max(old.id, earlier.id));
      }
      const closed = await browser.closedWithin("the old user's browser to be closed");
      expect(closed.code).toBe(4004);
      for (const ctl of [a.ctl, b.ctl]) {
        expect(await ctl.call(`[whisper] ${old.id}!PRIVATE`)).toStartWith("[error]");
        expect(await ctl.call("[shout] 1!after the loss")).toStartWith("[ok]");
      }
      expect(messages.filter((m) => m.includes("PRIVATE"))).toEqual([]);
      // Each node logs the loss once (what happened, how many browsers it closed).
      await within(
        (async () => {
          while (a.errors.length === 0 || b.errors.length === 0) await Bun.sleep(50);
        })(),
        "both nodes to log the data loss",
        10_000,
      );
      await Bun.sleep(1_000); // a few more periodic checks: still one line each
      for (const n of [a, b]) {
        const lost = n.errors.filter((line) => /lost webtalk's data/.test(line));
        expect(lost).toHaveLength(1);
      }
      expect(a.errors.find((l) => /lost/.test(l))).toMatch(/closed 1 browser/);
      expect(b.errors.find((l) => /lost/.test(l))).toMatch(/closed 0 browser/);
    } finally {
      for (const n of [a, b]) {
        n.ctl.close();
        await n.server.stop();
      }
    }
  }, 60_000);
}
