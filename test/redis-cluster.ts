// A real Redis Cluster (3 masters + 3 replicas) on loopback per test file, every process ended by its PID.

import type { Subprocess } from "bun";
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { within } from "./helpers.ts";

export const haveRedisCluster = Bun.which("redis-server") !== null && Bun.which("redis-cli") !== null;
if (!haveRedisCluster) {
  console.warn("SKIPPING every test that needs Redis Cluster: redis-server or redis-cli is not installed (apt-get install redis-server)");
}

export interface ClusterNode {
  port: number;
  url: string;
  pid: number;
  /** What the cluster says this node is now (read by `roles()`; updated by `failover`). */
  role: "master" | "replica";
}

export interface TestRedisCluster {
  /** Every node, masters first as `redis-cli --cluster create` assigned them. */
  nodes: ClusterNode[];
  /** URLs of every live node: any one is a seed. */
  seeds(): string[];
  /** The live masters, in slot order (masters()[0] serves slot 0). */
  masters(): ClusterNode[];
  /** Kills (SIGKILL) the master at `index` in `masters()` and waits until a replica took its slots and the cluster is ok. */
  failover(index: number): Promise<ClusterNode>;
  stop(): Promise<void>;
}

const NODE_TIMEOUT_MS = 1000;

export async function startRedisCluster(): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-rcluster-"));
  const procs = new Map<number, Subprocess>();
  const nodes: ClusterNode[] = [];
  try {
    const ports = await clusterPorts(6);
    for (const port of ports) {
      const proc = Bun.spawn(
        [
          "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
          "--cluster-config-file", join(dir, `nodes-${port}.conf`), "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
          "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", join(dir, `${port}.log`),
          // A replica whose link to its master was idle a while would otherwise refuse to fail over.
          "--cluster-replica-validity-factor", "0",
          // Replicas sync at once rather than 5 s later, so a failover right after start keeps the data.
          "--repl-diskless-sync-delay", "0",
        ],
        { stdout: "ignore", stderr: "ignore" },
      );
      procs.set(port, proc);
      nodes.push({ port, url: `redis://127.0.0.1:${port}`, pid: proc.pid, role: "master" });
    }
    await within(Promise.all(ports.map((p) => untilAnswers(p))), "6 redis-server nodes to answer PING", 10_000);
    const create = Bun.spawn(
      ["redis-cli", "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"],
      { stdout: "pipe", stderr: "pipe" },
    );
    const code = await within(create.exited, "redis-cli --cluster create", 20_000);
    if (code !== 0) throw new Error(`redis-cli --cluster create exited ${code}: ${await new Response(create.stdout).text()}`);
    await within(untilAllOk(nodes), "cluster_state:ok on every node", 20_000);
    await readRoles(nodes);
    await within(untilReplicasSynced(nodes), "every replica to finish its first sync", 20_000);
  } catch (error) {
    await stopAll(procs, dir);
    throw error;
  }
  const live = () => nodes.filter((n) => procs.has(n.port));
  const cluster: TestRedisCluster = {
    nodes,
    seeds: () => live().map((n) => n.url),
    masters: () => live().filter((n) => n.role === "master").sort((a, b) => firstSlot(a) - firstSlot(b)),
    async failover(index) {
      const master = cluster.masters()[index];
      if (!master) throw new Error(`no master #${index}`);
      const proc = procs.get(master.port)!;
      proc.kill("SIGKILL");
      await proc.exited;
      procs.delete(master.port);
      const before = slotsOf.get(master.port);
      await within(untilPromoted(live(), before ?? 0), `a replica of :${master.port} to be promoted`, 20_000);
      await within(untilAllOk(live()), "cluster_state:ok after failover", 20_000);
      await readRoles(live());
      return cluster.masters().find((m) => firstSlot(m) === before)!;
    },
    stop: () => stopAll(procs, dir),
  };
  return cluster;
}

/** Starts one cluster before a file's tests (skip them on `haveRedisCluster` otherwise) and stops it after. */
export function useRedisCluster(): TestRedisCluster {
  let started: TestRedisCluster | undefined;
  beforeAll(async () => {
    if (haveRedisCluster) started = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await started?.stop();
  });
  const running = (): TestRedisCluster => {
    if (!started) throw new Error("no Redis Cluster is running (is the test skipped without one?)");
    return started;
  };
  return {
    get nodes() {
      return running().nodes;
    },
    seeds: () => running().seeds(),
    masters: () => running().masters(),
    failover: (i) => running().failover(i),
    stop: () => running().stop(),
  };
}

/** The port of the master that serves `key`'s slot now. */
export async function masterOf(kit: Pick<TestRedisCluster, "masters">, key: string): Promise<number> {
  for (const master of kit.masters()) if (!(await cli(master.port, "EXISTS", key)).includes("MOVED")) return master.port;
  throw new Error(`no master serves ${key}`);
}

/** Runs redis-cli against one node and returns its output (trimmed). */
export async function cli(port: number, ...args: string[]): Promise<string> {
  const proc = Bun.spawn(["redis-cli", "-h", "127.0.0.1", "-p", String(port), ...args], { stdout: "pipe", stderr: "pipe" });
  const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return out.trim();
}

// The first slot each master serves, by port: how a promoted replica is matched to the master it replaced.
const slotsOf = new Map<number, number>();

function firstSlot(node: ClusterNode): number {
  return slotsOf.get(node.port) ?? Number.MAX_SAFE_INTEGER;
}

async function readRoles(nodes: ClusterNode[]): Promise<void> {
  const answering = nodes[0]!;
  const text = await cli(answering.port, "CLUSTER", "NODES");
  for (const line of text.split("\n")) {
    const [, address, flags, , , , , , ...slots] = line.split(" ");
    const port = Number(address?.split("@")[0]?.split(":")[1]);
    const node = nodes.find((n) => n.port === port);
    if (!node || flags?.includes("fail")) continue;
    node.role = flags?.includes("master") ? "master" : "replica";
    const first = slots.find((s) => /^\d/.test(s));
    if (node.role === "master" && first !== undefined) slotsOf.set(port, Number(first.split("-")[0]));
    else slotsOf.delete(port);
  }
}

async function untilAnswers(port: number): Promise<void> {
  while ((await cli(port, "PING")) !== "PONG") await Bun.sleep(50);
}

async function untilAllOk(nodes: ClusterNode[]): Promise<void> {
  for (const node of nodes) {
    while (!(await cli(node.port, "CLUSTER", "INFO")).includes("cluster_state:ok")) await Bun.sleep(100);
  }
}

async function untilReplicasSynced(nodes: ClusterNode[]): Promise<void> {
  for (const node of nodes.filter((n) => n.role === "replica")) {
    while (!(await cli(node.port, "INFO", "replication")).includes("master_link_status:up")) await Bun.sleep(100);
  }
}

// A replica reports itself master of the lost slot range once the failover election is won.
async function untilPromoted(nodes: ClusterNode[], slot: number): Promise<void> {
  for (;;) {
    for (const node of nodes) {
      if (await ownsSlot(node.port, slot)) return;
    }
    await Bun.sleep(100);
  }
}

async function ownsSlot(port: number, slot: number): Promise<boolean> {
  const nodes = await cli(port, "CLUSTER", "NODES");
  const me = nodes.split("\n").find((l) => l.includes("myself"));
  if (!me || !me.includes("master")) return false;
  return me.split(" ").slice(8).some((range) => {
    const [lo, hi] = range.split("-").map(Number);
    return lo !== undefined && slot >= lo && slot <= (hi ?? lo);
  });
}

async function stopAll(procs: Map<number, Subprocess>, dir: string): Promise<void> {
  for (const [port, proc] of procs) {
    proc.kill("SIGKILL");
    await proc.exited;
    procs.delete(port);
  }
  rmSync(dir, { recursive: true, force: true });
}

// Each node needs its port and port+10000 (the cluster bus) free: probe both, in a range whose bus ports exist.
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (ports.includes(port) || !bindable(port) || !bindable(port + 10_000)) continue;
    ports.push(port);
  }
  return ports;
}

function bindable(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}
