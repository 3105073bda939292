// A real redis-server per test file, on a free loopback port, ended by its PID.

import type { Subprocess } from "bun";
import { afterAll, beforeAll } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createLog } from "../src/observe/log.ts";
import { RedisLink } from "../src/state/redis-link.ts";
import { ShardMap } from "../src/state/shard-map.ts";
import { within } from "./helpers.ts";

export interface TestRedis {
  port: number;
  /** On the Redis Cluster kit (WEBTALK_TEST_REDIS_KIT=cluster), every master's port. */
  masters?: number[];
  url: string;
  pid: number;
  /** Kills the server (SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts the server again on the same port (its data is gone: no persistence). */
  restart(): Promise<void>;
}

export const haveRedis = Bun.which("redis-server") !== null;
if (!haveRedis) {
  console.warn("SKIPPING every test that needs Redis (cluster, --redis, Redis state): redis-server is not installed (apt-get install redis-server; .ci/run installs it)");
}

let prefixes = 0;
/** A key prefix no other test uses, so tests never see each other's state. */
export function uniquePrefix(name = "t"): string {
  return `${name}${process.pid}-${++prefixes}-${Math.random().toString(36).slice(2, 8)}:`;
}

/**
 * With `persistent` (a folder), the data survives `stop()` and `restart()`: every write is fsynced.
 * `args` are more configuration directives, e.g. `["--maxmemory-policy", "allkeys-lru"]`.
 */
export async function startRedis(options: { persistent?: string; args?: string[] } = {}): Promise<TestRedis> {
  const port = await freePort();
  let proc: Subprocess | undefined;
  const persistence = options.persistent
    ? ["--dir", options.persistent, "--appendonly", "yes", "--appendfsync", "always"]
    : ["--appendonly", "no"];
  if (options.persistent) mkdirSync(options.persistent, { recursive: true });
  const launch = async () => {
    proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence, ...(options.args ?? [])], {
      stdout: "ignore",
      stderr: "ignore",
    });
    await within(waitForPort(port), "redis-server to accept connections", 10_000);
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return proc!.pid;
    },
    async stop() {
      proc?.kill("SIGKILL");
      await proc?.exited;
    },
    restart: launch,
  };
}

/**
 * Starts one redis-server before a test file's tests (where redis-server is installed: skip the tests
 * on `haveRedis` otherwise) and kills it after them. The returned handle reads the running server.
 */
export function useRedis(options: Parameters<typeof startRedis>[0] = {}): TestRedis {
  let started: TestRedis | undefined;
  beforeAll(async () => {
    if (haveRedis) started = process.env.WEBTALK_TEST_REDIS_KIT === "cluster" ? await clusterAsRedis() : await startRedis(options);
  }, 60_000);
  afterAll(async () => {
    await started?.stop();
  });
  const running = (): TestRedis => {
    if (!started) throw new Error("no redis-server is running (is the test skipped without one?)");
    return started;
  };
  return {
    get port() {
      return running().port;
    },
    get url() {
      return running().url;
    },
    get pid() {
      return running().pid;
    },
    get masters() {
      return running().masters;
    },
    stop: () => running().stop(),
    restart: () => running().restart(),
  };
}

/**
 * With WEBTALK_TEST_REDIS_KIT=cluster (redis-cluster-suites.test.ts), `useRedis` starts a 3-master Redis
 * Cluster instead and hands out one master's address: the cluster suites run unchanged against it.
 * Restarting it is not supported there: the suites that need it are not in that run.
 */
async function clusterAsRedis(): Promise<TestRedis> {
  // A kit the parent run started (redis-cluster-suites.test.ts): shared by every file, which only uses
  // prefixes of its own, and left running for the parent to stop.
  const shared = process.env.WEBTALK_TEST_REDIS_KIT_MASTERS?.split(",").map(Number);
  if (shared && shared.length > 0) {
    const port = shared[0]!;
    const stop = () => Promise.resolve();
    return { port, masters: shared, url: `redis://127.0.0.1:${port}`, pid: 0, stop, restart: () => Promise.reject(new Error("restart() is not supported on the Redis Cluster kit")) };
  }
  const { startRedisCluster } = await import("./redis-cluster.ts");
  const kit = await startRedisCluster();
  const seed = kit.masters()[0]!;
  return {
    port: seed.port,
    masters: kit.masters().map((m) => m.port),
    url: seed.url,
    pid: seed.pid,
    stop: () => kit.stop(),
    restart: () => Promise.reject(new Error("restart() is not supported on the Redis Cluster kit")),
  };
}

/**
 * Runs redis-cli against `redis` (bounded) and answers its output: for tests that read or poke Redis
 * directly. On the Redis Cluster kit it follows redirections (-c), and `--scan` asks every master.
 */
export function redisCliOn(redis: { port: number; masters?: number[] }, ...args: string[]): string {
  const run = (port: number, extra: string[]) =>
    spawnSync("redis-cli", ["-p", String(port), ...extra, ...args], { encoding: "utf8", timeout: 10_000 }).stdout.trim();
  if (!onClusterKit()) return run(redis.port, []);
  if (args[0] === "--scan") return (redis.masters ?? [redis.port]).map((port) => run(port, [])).filter(Boolean).join("\n");
  return run(redis.port, ["-c"]);
}

/** Whether this run's useRedis() is the Redis Cluster kit. */
export function onClusterKit(): boolean {
  return process.env.WEBTALK_TEST_REDIS_KIT === "cluster";
}

/**
 * The key `name` (`online`, `chnodes:7`, `sess:12`) of the user or channel `id` under `prefix`, in this
 * run's layout: `prefix + name` on a single Redis, the ID's shard's tag + name on the Redis Cluster kit.
 * A per-shard key without an ID (`nodes`, `nodeseen`) is shard 0's.
 */
export function keyIn(prefix: string, name: string, id = 0): string {
  if (!onClusterKit()) return prefix + name;
  const shards = ShardMap.cluster(prefix);
  return shards.key(shards.of(id), name);
}

/** The SCAN pattern of `prefix`'s keys whose name starts with `name`, and how to read a found key's name. */
export function keysPattern(prefix: string, name = ""): { pattern: string; nameOf: (key: string) => string | undefined } {
  if (!onClusterKit()) return { pattern: `${prefix}${name}*`, nameOf: (key) => (key.startsWith(prefix) ? key.slice(prefix.length) : undefined) };
  const shards = ShardMap.cluster(prefix);
  return { pattern: `{${prefix}#*}${name}*`, nameOf: (key) => shards.nameOf(key) };
}

/** A per-shard hash's entries over every shard (HLEN summed): e.g. `online`, users online anywhere. */
export function hashLenIn(redis: { port: number; masters?: number[] }, prefix: string, name: string): number {
  if (!onClusterKit()) return Number(redisCliOn(redis, "HLEN", prefix + name));
  return ShardMap.cluster(prefix).tags.reduce((sum, tag) => sum + Number(redisCliOn(redis, "HLEN", tag + name)), 0);
}

/** A connected link for tests that use the state classes directly. */
export async function link(redis: TestRedis): Promise<RedisLink> {
  const l = new RedisLink({ url: redis.url, timeoutMs: 2000, log: createLog("silent") });
  await l.open();
  return l;
}

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
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
