// The Redis Cluster test kit itself: 3 masters serving every slot, and a failover that promotes a replica.
// And webtalk on a cluster node: not supported yet, so it says so at startup (exit 2) instead of dying
// on its first script with CROSSSLOT.

import { describe, expect, test } from "bun:test";
import { LOOPBACK, MAIN, spawnServer } from "./process.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("Redis Cluster test kit", () => {
  const cluster = useRedisCluster();

  test("three masters and three replicas; a key lands on each master", async () => {
    expect(cluster.masters()).toHaveLength(3);
    expect(cluster.nodes.filter((n) => n.role === "replica")).toHaveLength(3);
    // {a}, {b}, {c}... hash to slots spread over the ranges: find one key per master by asking CLUSTER KEYSLOT.
    for (const master of cluster.masters()) {
      const key = await keyServedBy(master.port);
      expect(await cli(master.port, "SET", key, "v")).toBe("OK");
      expect(await cli(master.port, "GET", key)).toBe("v");
    }
  });

  test("webtalk starts on a cluster node, given a master or a replica, and says it runs on Redis Cluster", async () => {
    const replica = cluster.nodes.find((n) => n.role === "replica")!;
    for (const url of [cluster.masters()[0]!.url, replica.url]) {
      const node = await spawnServer(["bun", MAIN, ...LOOPBACK, "--admin", "off", "--redis", url, "--redis-prefix", `start${replica.port}${url.length}:`]);
      try {
        expect(node.output()).toContain("on Redis Cluster (64 shards)");
        expect(node.output()).not.toContain("CROSSSLOT");
      } finally {
        await node.stop("SIGTERM");
      }
    }
  }, 60_000);

  test("failover kills a master and a replica takes over its slots", async () => {
    const old = cluster.masters()[1]!;
    const key = await keyServedBy(old.port);
    await cli(old.port, "SET", key, "before");
    await cli(old.port, "WAIT", "1", "2000");
    const promoted = await cluster.failover(1);
    expect(promoted.port).not.toBe(old.port);
    expect(cluster.masters()).toHaveLength(3);
    expect(cluster.seeds()).not.toContain(old.url);
    expect(await cli(promoted.port, "GET", key)).toBe("before");
    expect(await cli(promoted.port, "CLUSTER", "INFO")).toContain("cluster_state:ok");
  }, 60_000);
});

async function keyServedBy(port: number): Promise<string> {
  for (let i = 0; ; i++) {
    const key = `kit:${i}`;
    const slot = Number(await cli(port, "CLUSTER", "KEYSLOT", key));
    const owner = await cli(port, "CLUSTER", "NODES");
    const me = owner.split("\n").find((l) => l.includes("myself"))!;
    const mine = me.split(" ").slice(8).some((r) => {
      const [lo, hi] = r.split("-").map(Number);
      return slot >= lo! && slot <= (hi ?? lo!);
    });
    if (mine) return key;
  }
}
