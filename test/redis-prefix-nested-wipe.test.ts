// Issue 14 / README "--redis-prefix: namespace for every Redis key and channel, so deployments can
// share a Redis". Two deployments share one Redis with prefixes P and P + "a:" (e.g. `webtalk:` and
// `webtalk:a:`). When deployment P loses its own data (its generation key deleted) and re-creates it,
// its wipe must touch only its own keys: deployment P+"a:" lost nothing, so its users must stay, its
// browsers stay open, and it must not log a data loss nor send `[epoch] NEW`.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConsola, type ConsolaInstance } from "consola";
import { ControlClient, defaultConfig, loggedIn, newUser } from "./helpers.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";
import { startServer, type Webtalk } from "../src/server.ts";

let redis: TestRedis | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

async function node(prefix: string): Promise<{ server: Webtalk; ctl: ControlClient; errors: string[] }> {
  const errors: string[] = [];
  const log: ConsolaInstance = createConsola({
    level: 1,
    reporters: [{ log: (entry) => void (entry.level === 0 && errors.push(entry.args.map(String).join(" "))) }],
  });
  const server = await startServer(defaultConfig({ redis: redis!.url, redisPrefix: prefix, lease: 1 }), log);
  return { server, ctl: await ControlClient.connect(server.private.port), errors };
}

test.skipIf(!haveRedis)("a deployment's wipe after its own data loss leaves a deployment with a longer prefix alone", async () => {
  const outer = uniquePrefix("nest");
  const inner = `${outer}a:`;
  const a = await node(outer);
  const b = await node(inner);
  const l = await link(redis!);
  try {
    const user = await newUser(b.ctl);
    const [browser] = await loggedIn(b.server, b.ctl, user);
    const messages: string[] = [];
    browser.ws.addEventListener("message", (event) => messages.push(String(event.data)));
    let closed: number | undefined;
    browser.ws.addEventListener("close", (event) => (closed = event.code));
    const innerGeneration = String(await l.call("GET", [`${inner}generation`]));
    const outerGeneration = String(await l.call("GET", [`${outer}generation`]));
    const gone = await newUser(a.ctl);
    expect(await a.ctl.call(`[whisper] ${gone.id}!held`)).toBe("[ok] message queued");
    expect(await l.call("EXISTS", [`${outer}held:${gone.id}`])).toBe(1);

    // Deployment `outer` (only) loses its data.
    await l.call("DEL", [`${outer}generation`]);
    // It notices within a third of its lease and re-creates its data.
    for (let i = 0; i < 100; i++) {
      const now = await l.call("GET", [`${outer}generation`]);
      if (now !== null && String(now) !== outerGeneration && !String(now).startsWith("wiping")) break;
      await Bun.sleep(50);
    }
    expect(String(await l.call("GET", [`${outer}generation`]))).not.toBe(outerGeneration);
    await Bun.sleep(1_500); // the inner deployment's periodic checks

    // The outer deployment's own old data is gone: nothing of it left behind.
    expect(await l.call("EXISTS", [`${outer}held:${gone.id}`])).toBe(0);
    expect(await l.call("HEXISTS", [`${outer}users`, String(gone.id)])).toBe(0);
    // Deployment `inner` must be untouched.
    expect(String(await l.call("GET", [`${inner}generation`]))).toBe(innerGeneration);
    expect(closed).toBeUndefined();
    expect(await b.ctl.call(`[whisper] ${user.id}!still here`)).toStartWith("[ok]");
    expect(b.errors.filter((line) => /lost|back in time/.test(line))).toEqual([]);
  } finally {
    l.close();
    for (const n of [a, b]) {
      n.ctl.close();
      await n.server.stop();
    }
  }
}, 60_000);
