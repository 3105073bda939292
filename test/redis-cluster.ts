// A real Redis Cluster for tests: 3 masters and 3 replicas (by default), each a redis-server process on
// loopback in a temp folder, joined by `redis-cli --cluster create`, every one ended by its PID.

import type { Subprocess } from "bun";
import { afterAll, beforeAll } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { within } from "./helpers.ts";

export const haveRedisCluster = Bun.which("redis-server") !== null && Bun.which("redis-cli") !== null;
if (!haveRedisCluster) {
  console.warn("SKIPPING every test that needs a Redis Cluster: redis-server or redis-cli is not installed (apt-get install redis-server; .ci/run installs it)");
}

export interface ClusterNode {
  port: number;
  url: string;
  proc: Subprocess;
}

export interface TestRedisCluster {
  nodes: ClusterNode[];
  /** A URL to give webtalk: any node's, here the first master's. */
  url: string;
  /** The ports of the nodes that are masters now (a failover changes them). */
  masters(): number[];
  /** Kills master `port` with SIGKILL and waits until a replica took its slots and the cluster is ok. */
  failover(port: number): Promise<number>;
  /** Runs redis-cli against one node; answers its output. */
  cli(port: number, ...args: string[]): string;
  stop(): Promise<void>;
}

/** How long a node may be unreachable before its replica takes over: short, so a failover test is quick. */
const NODE_TIMEOUT_MS = 1_000;

export async function startRedisCluster(options: { masters?: number; replicas?: number } = {}): Promise<TestRedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const dir = mkdtempSync(join(tmpdir(), "webtalk-rcluster-"));
  const nodes: ClusterNode[] = [];
  const cli = (port: number, ...args: string[]) =>
    spawnSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8", timeout: 10_000 }).stdout.trim();
  const stop = async () => {
    for (const node of nodes) node.proc.kill("SIGKILL");
    await Promise.all(nodes.map((node) => node.proc.exited));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of await freeClusterPorts(masters * (1 + replicas))) {
      mkdirSync(join(dir, String(port)));
      const proc = Bun.spawn(
        ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--dir", join(dir, String(port)), "--cluster-enabled", "yes",
          "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
          "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"],
        { stdout: "ignore", stderr: "ignore" },
      );
      nodes.push({ port, url: `redis://127.0.0.1:${port}`, proc });
    }
    for (const node of nodes) await within(waitForPort(node.port), `redis-server ${node.port} to accept connections`, 10_000);
    const create = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
      { encoding: "utf8", timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    await within(clusterOk(nodes.map((n) => n.port), cli), "every cluster node to say cluster_state:ok", 30_000);
    // A replica that has not synced yet cannot take over: a failover test would wait for nothing.
    await within(replicasSynced(nodes.map((n) => n.port), cli), "every replica to sync with its master", 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const alive = () => nodes.filter((node) => node.proc.exitCode === null && node.proc.signalCode === null);
  const mastersNow = () => {
    const seen = cli(alive()[0]!.port, "cluster", "nodes");
    return seen
      .split("\n")
      .filter((line) => /\bmaster\b/.test(line) && !/\bfail\b/.test(line))
      .map((line) => Number(/:(\d+)@/.exec(line)![1]));
  };
  return {
    nodes,
    url: nodes[0]!.url,
    masters: mastersNow,
    cli,
    async failover(port: number) {
      const node = nodes.find((n) => n.port === port);
      if (!node) throw new Error(`no cluster node on port ${port}`);
      const before = new Set(mastersNow());
      node.proc.kill("SIGKILL");
      await node.proc.exited;
      const survivors = alive().map((n) => n.port);
      const promoted = within(
        (async () => {
          for (;;) {
            const now = mastersNow().filter((p) => p !== port && !before.has(p));
            if (now.length > 0 && survivors.every((p) => /^cluster_state:ok/m.test(cli(p, "cluster", "info")))) return now[0]!;
            await Bun.sleep(100);
          }
        })(),
        `a replica of ${port} to be promoted`,
        30_000,
      );
      return await promoted;
    },
    stop,
  };
}

/**
 * Starts a Redis Cluster before a test file's tests (skip them on `haveRedisCluster`) and stops it after.
 * The handle reads the running cluster.
 */
export function useRedisCluster(options: Parameters<typeof startRedisCluster>[0] = {}): () => TestRedisCluster {
  let started: TestRedisCluster | undefined;
  beforeAll(async () => {
    if (haveRedisCluster) started = await startRedisCluster(options);
  }, 60_000);
  afterAll(async () => {
    await started?.stop();
  });
  return () => {
    if (!started) throw new Error("no Redis Cluster is running (is the test skipped without redis-server?)");
    return started;
  };
}

async function clusterOk(ports: number[], cli: (port: number, ...args: string[]) => string): Promise<void> {
  while (!ports.every((port) => /^cluster_state:ok/m.test(cli(port, "cluster", "info")))) await Bun.sleep(100);
}

async function replicasSynced(ports: number[], cli: (port: number, ...args: string[]) => string): Promise<void> {
  const synced = (port: number) => {
    const info = cli(port, "info", "replication");
    return /^role:master/m.test(info) || /^master_link_status:up/m.test(info);
  };
  while (!ports.every(synced)) await Bun.sleep(100);
}

/** `count` ports, each free along with its cluster bus port (port + 10000). */
async function freeClusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 200) throw new Error("no free ports for a Redis Cluster");
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (!ports.includes(port) && (await free(port)) && (await free(port + 10_000))) ports.push(port);
  }
  return ports;
}

async function free(port: number): Promise<boolean> {
  try {
    const probe = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    probe.stop(true);
    return true;
  } catch {
    return false;
  }
}

async function waitForPort(port: number): Promise<void> {
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      return;
    } catch {
      await Bun.sleep(20);
    }
  }
}
