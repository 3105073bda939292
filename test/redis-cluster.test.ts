// Redis Cluster (issue 15): the test kit starts a real cluster of 3 masters and 3 replicas; webtalk
// does not run on one yet, and says so at startup instead of failing on its first script (CROSSSLOT).

import { describe, expect, test } from "bun:test";
import { within } from "./helpers.ts";
import { LOOPBACK, MAIN, runToExit } from "./process.ts";
import { haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

const cluster = useRedisCluster();

describe.skipIf(!haveRedisCluster)("Redis Cluster", () => {
  test("the kit's cluster spreads keys over 3 masters", () => {
    const c = cluster();
    const masters = c.masters();
    expect(masters).toHaveLength(3);
    // Keys under 60 hash tags land on every master (redis-cli -c follows MOVED).
    for (let i = 0; i < 60; i++) expect(c.cli(c.nodes[0]!.port, "-c", "SET", `{k${i}}x`, "1")).toBe("OK");
    const perMaster = masters.map((port) => Number(c.cli(port, "DBSIZE")));
    console.log(`keys per master: ${perMaster.join(", ")}`);
    for (const count of perMaster) expect(count).toBeGreaterThan(0);
  });

  test("webtalk refuses a cluster node at startup with exit 2 and a reason, on a master and on a replica", async () => {
    const c = cluster();
    const replica = c.nodes.find((node) => !c.masters().includes(node.port))!;
    for (const url of [c.url, replica.url]) {
      const { code, stderr } = await runToExit(["bun", MAIN, ...LOOPBACK, "--admin", "off", "--redis", url]);
      expect(code).toBe(2);
      expect(stderr).toContain("--redis points at a Redis Cluster node");
      expect(stderr).toContain("docs/internals/redis-cluster.md");
      expect(stderr).not.toContain("CROSSSLOT");
    }
  });

  test("killing a master promotes its replica, and the cluster serves every slot again", async () => {
    const c = cluster();
    const victim = c.masters()[1]!;
    // Replication is asynchronous: wait until the replicas hold test 1's 60 keys before the kill.
    const replicaKeys = () => c.nodes.filter((n) => !c.masters().includes(n.port)).reduce((sum, n) => sum + Number(c.cli(n.port, "DBSIZE")), 0);
    await within((async () => { while (replicaKeys() < 60) await Bun.sleep(50); })(), "the replicas to hold every key", 10_000);
    const promoted = await c.failover(victim);
    expect(c.masters()).toContain(promoted);
    expect(c.masters()).not.toContain(victim);
    expect(c.cli(promoted, "cluster", "info")).toMatch(/^cluster_state:ok/m);
    // The promoted replica had synced: every key written before the kill is still there.
    for (let i = 0; i < 60; i++) expect(c.cli(promoted, "-c", "GET", `{k${i}}x`)).toBe("1");
  }, 60_000);
});
