// webtalk nodes on a real Redis Cluster (3 masters, 3 replicas: test/redis-cluster.ts): `--redis` at
// one cluster node spreads the data over 64 shards on every master, and a browser on one node
// receives what another node sends, per source in order; a master killed mid-traffic fails commands
// fast, then the cluster goes on.

import { afterAll, describe, expect, test } from "bun:test";
import type { Config } from "../src/config/schema.ts";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, loggedIn, newUser, startTestServer } from "./helpers.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

const encoder = new TextEncoder();
const frame = (text: string) => encoder.encode(`${String(encoder.encode(text).length).padStart(5, "0")}${text}`);

describe.skipIf(!haveRedisCluster)("webtalk on a Redis Cluster", () => {
  const kit = useRedisCluster();
  const open: { stop(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const c of open) await c.stop();
  });
  let prefixes = 0;

  async function cluster(count: number, overrides: Partial<Config> = {}) {
    const prefix = `mode${++prefixes}-${Date.now()}:`;
    const nodes: Webtalk[] = [];
    const ctls: ControlClient[] = [];
    for (let i = 0; i < count; i++) {
      const node = await startTestServer({ redis: kit.masters()[i % 3]!.url, redisPrefix: prefix, lease: 1, ...overrides });
      nodes.push(node);
      ctls.push(await ControlClient.connect(node.private.port));
    }
    const handle = {
      prefix,
      nodes,
      ctls,
      async stop() {
        for (const c of ctls) c.close();
        for (const n of nodes) await n.stop();
      },
    };
    open.push(handle);
    return handle;
  }

  test("a browser on node B receives node A's whispers and shouts, each source in order; keys on every master", async () => {
    const c = await cluster(2);
    const [a, b] = c.ctls as [ControlClient, ControlClient];
    const [browser, user] = await loggedIn(c.nodes[1]!, b);
    expect(await a.ok(`[online] ${user.id}`)).toBe("1");
    const channel = await a.ok("[newchannel]");
    await a.ok(`[join] ${channel}!${user.id}`);
    const whispers = Array.from({ length: 200 }, (_, i) => `w${i}`);
    const shouts = Array.from({ length: 200 }, (_, i) => `s${i}`);
    for (let i = 0; i < 200; i++) {
      a.write(frame(`[whisper] ${user.id}!${whispers[i]}`));
      a.write(frame(`[shout] ${channel}!${shouts[i]}`));
    }
    expect((await a.replies.take(400)).filter((r) => !r.startsWith("[ok]"))).toEqual([]);
    const got = await browser.messages.take(400);
    expect(got.filter((m) => m.startsWith("w"))).toEqual(whispers);
    expect(got.filter((m) => m.startsWith("s"))).toEqual(shouts);
    for (const m of kit.masters()) expect(Number(await cli(m.port, "DBSIZE"))).toBeGreaterThan(20);
    const stats = await a.ok("[stats]");
    expect(stats).toContain("online=1");
    browser.close();
  });

  test("presence, kick and leave across nodes; a channel's members and counts", async () => {
    const c = await cluster(2);
    const [a, b] = c.ctls as [ControlClient, ControlClient];
    const [browser, user] = await loggedIn(c.nodes[1]!, b);
    const other = await newUser(a);
    const channel = await a.ok("[newchannel]");
    await a.ok(`[join] ${channel}!${user.id}`);
    await a.ok(`[join] ${channel}!${other.id}`);
    expect(await a.ok(`[count] ${channel}`)).toBe("2!1");
    await a.ok(`[leave] ${channel}!${user.id}`);
    await a.ok(`[shout] ${channel}!not for you`);
    await a.ok(`[whisper] ${user.id}!marker`);
    expect(await browser.messages.next()).toBe("marker");
    await a.ok(`[kick] ${user.id}`);
    expect((await browser.closed).code).toBe(4005);
    await Bun.sleep(200);
    expect(await a.ok(`[online] ${user.id}`)).toBe("0");
    expect(await a.ok(`[whisper] ${user.id}!held`)).toBeDefined();
  });
});
