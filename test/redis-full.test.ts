// Issue 14: a full Redis (maxmemory reached under noeviction, the policy webtalk requires) refuses
// writes with OOM. That is no internal error: commands say the backend is full, /healthz and /readyz
// answer 503 naming it while it lasts (a load balancer stops sending browsers), the log says it once
// per window rather than once per command, and all is well again once Redis has room.

import { expect, test } from "bun:test";
import { createConsola, type ConsolaInstance } from "consola";
import { ControlClient, defaultConfig, newUser, within } from "./helpers.ts";
import { haveRedis, link, useRedis, uniquePrefix } from "./redis-server.ts";
import { startServer } from "../src/server.ts";

const redis = useRedis({ args: ["--maxmemory-policy", "noeviction"] });

const FULL = "[error] backend full: Redis refused the write (maxmemory)";

test.skipIf(!haveRedis)("a full Redis: commands answer 'backend full', /healthz and /readyz 503 naming it, one warning, well again with room", async () => {
  const lines: string[] = [];
  const log: ConsolaInstance = createConsola({
    level: 1,
    reporters: [{ log: (entry) => void (entry.level <= 1 && lines.push(entry.args.map(String).join(" "))) }],
  });
  const server = await startServer(defaultConfig({ redis: redis.url, redisPrefix: uniquePrefix("full"), lease: 1 }), log);
  const admin = `http://127.0.0.1:${server.admin!.port}`;
  const ctl = await ControlClient.connect(server.private.port);
  const l = await link(redis);
  try {
    const user = await newUser(ctl);
    const used = Number(/used_memory:(\d+)/.exec(String(await l.call("INFO", ["memory"])))![1]);
    await l.call("CONFIG", ["SET", "maxmemory", String(used + 200_000)]);
    let reply = "";
    for (let i = 0; i < 2_000 && (reply === "" || reply.startsWith("[ok]")); i++) reply = await ctl.call(`[store] fill${i}!${"v".repeat(4_000)}`);
    expect(reply).toBe(FULL);
    // A command's own bytes count against maxmemory while Redis reads it: fill on with small writes
    // until even a small one is refused, so the small commands below meet a Redis that is truly full.
    reply = "";
    for (let i = 0; i < 20_000 && (reply === "" || reply.startsWith("[ok]")); i++) reply = await ctl.call(`[store] small${i}!v`);
    expect(reply).toBe(FULL);
    // Every write refused the same way, whichever command.
    for (let i = 0; i < 20; i++) expect(await ctl.call(`[store] more${i}!${"v".repeat(4_000)}`)).toBe(FULL);
    expect(await ctl.call(`[whisper] ${user.id}!held while full`)).toBe(FULL);
    const health = await within(fetch(`${admin}/healthz`), "/healthz");
    expect(health.status).toBe(503);
    expect(JSON.stringify(await health.json())).toContain("maxmemory");
    const ready = await within(fetch(`${admin}/readyz`), "/readyz");
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(/^not ready: .*maxmemory/);
    expect(lines.filter((line) => /internal error|command failed/.test(line))).toEqual([]);
    expect(lines.filter((line) => /maxmemory/.test(line))).toHaveLength(1);

    // Room again: healthy, and writes work.
    await l.call("CONFIG", ["SET", "maxmemory", "0"]);
    expect((await within(fetch(`${admin}/healthz`), "/healthz")).status).toBe(200);
    expect(await ctl.call("[store] after!ok")).toStartWith("[ok]");
  } finally {
    await l.call("CONFIG", ["SET", "maxmemory", "0"]).catch(() => undefined);
    l.close();
    ctl.close();
    await server.stop();
  }
}, 60_000);
