// A cluster node in this process on a test redis-server, whose error lines the test can read, and a
// command retried while the node waits for Redis to come back.

import { createConsola } from "consola";
import { startServer, type Webtalk } from "../src/server.ts";
import { ControlClient, defaultConfig, within } from "./helpers.ts";
import type { TestRedis } from "./redis-server.ts";

export interface RedisNode {
  server: Webtalk;
  ctl: ControlClient;
  /** Every error line the node logged, in order. */
  errors: string[];
}

/** Starts a node on `redis` under `prefix` (lease 1 s) with a control connection; its error lines are kept. */
export async function startRedisNode(redis: Pick<TestRedis, "url">, prefix: string): Promise<RedisNode> {
  const errors: string[] = [];
  const log = createConsola({
    level: 1,
    reporters: [{ log: (entry) => void (entry.level === 0 && errors.push(entry.args.map(String).join(" "))) }],
  });
  const server = await startServer(defaultConfig({ redis: redis.url, redisPrefix: prefix, lease: 1 }), log);
  return { server, ctl: await ControlClient.connect(server.private.port), errors };
}

/** A command answered once the node serves again (it answers backend unavailable while Redis is away). */
export function callWhenUp(ctl: ControlClient, payload: string): Promise<string> {
  return within(
    (async () => {
      for (;;) {
        const reply = await ctl.call(payload);
        if (!reply.includes("backend unavailable")) return reply;
        await Bun.sleep(100);
      }
    })(),
    `${payload} to be answered`,
    15_000,
  );
}
