// Runs every scenario against every server, in alternating rounds, and gathers the figures.

import { resolve } from "node:path";
import { benchRedis, redisAvailable } from "./redis.ts";
import { canPin, pinSelf, startServerProcess, type ServerProcess } from "./processes.ts";
import {
  closeSession,
  fanoutBurst,
  fanoutRate,
  openSession,
  storesPipelined,
  storesSerial,
  whispers,
  type Figures,
  type Target,
} from "./scenarios.ts";
import { Workers } from "./workers.ts";

const ROOT = resolve(import.meta.dir, "../..");

export interface BenchOptions {
  /** Subscriber counts for the fan-out scenarios. */
  sizes: number[];
  rounds: number;
  /** Load-generator processes holding the browsers. */
  workers: number;
  /** Browsers for the connections scenario (0 skips it). */
  connections: number;
  /** Deliveries per full-speed fan-out burst (shouts = deliveries / N). */
  deliveries: number;
  /** Deliveries allowed in flight during a burst. */
  window: number;
  /** Fixed-rate fan-out: shouts per second, for this many seconds. */
  rate: number;
  rateSeconds: number;
  /** Users (browsers) for the whisper and control scenarios, and how many of each command. */
  whisperUsers: number;
  whispers: number;
  stores: number;
  serial: number;
  /** Handshakes in flight per worker while logging in. */
  concurrency: number;
  redis: boolean;
  pin: boolean;
  /** When set, servers started here run under `bun --cpu-prof` and write their profiles there. */
  profileDir?: string;
  /** Servers to compare; by default webtalk and the limit, started here. */
  targets: TargetSpec[];
  log: (line: string) => void;
}

/** A server to measure: a command to start it, or one already running (`--public/--private/--pid`). */
export type TargetSpec =
  | { name: string; command: string[] }
  | { name: string; external: Target };

export const WEBTALK: TargetSpec = {
  name: "webtalk",
  command: [process.execPath, resolve(ROOT, "src/main.ts"), "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--log-level", "info", "--admin", "off"],
};
export const LIMIT: TargetSpec = {
  name: "limit",
  command: [process.execPath, resolve(ROOT, "scripts/bench/limit-server.ts"), "--public", "127.0.0.1:0", "--private", "127.0.0.1:0"],
};

/** Every figure of every round: results[server][round][metric]. */
export interface BenchResults {
  date: string;
  machine: string;
  options: Omit<BenchOptions, "log" | "targets"> & { targets: string[] };
  results: Record<string, Figures[]>;
  seconds: number;
}

const SERVER_CORES = "0";
const CLIENT_CORES = "1";

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const started = performance.now();
  const pinning = options.pin && canPin();
  if (pinning) await pinSelf(CLIENT_CORES);
  const log = options.log;
  const results: Record<string, Figures[]> = {};
  for (const t of options.targets) results[t.name] = [];
  if (options.redis && redisAvailable()) results.redis = [];
  const workers = await Workers.start(options.workers, pinning ? CLIENT_CORES : undefined);
  try {
    for (let round = 0; round < options.rounds; round++) {
      // Alternate who goes first, so drift in the machine's load spreads over both.
      const order = round % 2 === 0 ? options.targets : [...options.targets].reverse();
      const figures = new Map<string, Figures>(order.map((t) => [t.name, {}]));
      const sizes = [...new Set([options.whisperUsers, ...options.sizes])].filter((n) => n > 0);
      for (const n of sizes) {
        for (const spec of order) {
          const into = figures.get(spec.name)!;
          await withServer(profiled(spec, options.profileDir), pinning, async (target) => {
            log(`round ${round + 1}/${options.rounds}  ${spec.name}  ${n} browsers`);
            const { session, figures: login } = await openSession(target, workers, n, options.concurrency);
            try {
              put(into, `login.${n}`, login);
              if (options.sizes.includes(n)) {
                // A short warm-up burst first, so both servers are measured with their JIT warm.
                await fanoutBurst(session, Math.max(n, options.deliveries / 10), options.window);
                put(into, `fanout.${n}`, await fanoutBurst(session, options.deliveries, options.window));
                put(into, `rate.${n}`, await fanoutRate(session, options.rate, options.rateSeconds));
              }
              if (n === options.whisperUsers) {
                // Long warm-ups: the JIT's compiler threads count in the server's CPU, and webtalk has
                // more code to compile than the limit; steady state is what is compared.
                await whispers(session, Math.ceil(options.whispers / 2));
                put(into, "whisper", await whispers(session, options.whispers));
                await storesPipelined(session, Math.ceil(options.stores / 4));
                put(into, "store", await storesPipelined(session, options.stores));
                await storesSerial(session, Math.ceil(options.serial / 10));
                put(into, "serial", await storesSerial(session, options.serial));
              }
            } finally {
              await closeSession(session);
            }
          });
        }
      }
      if (options.connections > 0) {
        for (const spec of order) {
          await withServer(profiled(spec, options.profileDir), pinning, async (target) => {
            log(`round ${round + 1}/${options.rounds}  ${spec.name}  ${options.connections} idle browsers`);
            const { session, figures: login } = await openSession(target, workers, options.connections, options.concurrency);
            await closeSession(session);
            put(figures.get(spec.name)!, "connections", login);
          });
        }
      }
      if (results.redis) {
        log(`round ${round + 1}/${options.rounds}  redis`);
        const redis = await benchRedis({
          pipelined: options.stores,
          serial: options.serial,
          serverCores: pinning ? SERVER_CORES : undefined,
          clientCores: pinning ? CLIENT_CORES : undefined,
        });
        const into: Figures = {};
        put(into, "store", redis.pipelined);
        put(into, "serial", redis.serial);
        results.redis.push(into);
      }
      for (const [name, f] of figures) results[name]!.push(f);
    }
  } finally {
    await workers.stop();
  }
  const { log: _log, targets, ...rest } = options;
  return {
    date: new Date().toISOString(),
    machine: await machine(),
    options: { ...rest, pin: pinning, targets: targets.map((t) => t.name) },
    results,
    seconds: (performance.now() - started) / 1000,
  };
}

async function withServer(spec: TargetSpec, pinning: boolean, fn: (target: Target) => Promise<void>): Promise<void> {
  if ("external" in spec) return fn(spec.external);
  const server: ServerProcess = await startServerProcess(spec.name, spec.command, pinning ? SERVER_CORES : undefined);
  try {
    await fn({ ...server, name: spec.name });
  } finally {
    await server.stop();
  }
}

// Runs a server started here under Bun's sampling profiler (markdown and .cpuprofile, written at exit).
function profiled(spec: TargetSpec, dir: string | undefined): TargetSpec {
  if (!dir || "external" in spec) return spec;
  const [bun, ...rest] = spec.command;
  const flags = ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval=200"];
  return { name: spec.name, command: [bun!, ...flags, ...rest] };
}

function put(into: Figures, prefix: string, figures: Figures): void {
  for (const [key, value] of Object.entries(figures)) into[`${prefix}.${key}`] = value;
}

async function machine(): Promise<string> {
  const cpuinfo = await Bun.file("/proc/cpuinfo").text().catch(() => "");
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const cores = navigator.hardwareConcurrency;
  const memory = await Bun.file("/proc/meminfo").text().catch(() => "");
  const kb = Number(/MemTotal:\s+(\d+)/.exec(memory)?.[1] ?? 0);
  return `${cores} × ${model}, ${Math.round(kb / 1024 / 1024)} GiB, Linux, Bun ${Bun.version}`;
}
