// What Redis itself does for the cluster's messages: commands by name (INFO commandstats), its own CPU
// (INFO cpu) and its network bytes (INFO stats), read before and after a burst; and the yardstick, Redis's
// own PUBLISH throughput from redis-benchmark against the same server in the same run.

import { track, untrack } from "./processes.ts";
import type { Figures } from "./scenarios.ts";
import { within } from "./within.ts";

export interface RedisSample {
  /** Calls per command name (lower case), from `cmdstat_NAME:calls=…`. */
  calls: Record<string, number>;
  /** used_cpu_sys + used_cpu_user (main and every thread), seconds. */
  cpuSeconds: number;
  netInBytes: number;
  netOutBytes: number;
}

/** One INFO read through redis-cli (not on the measured path: one call before and one after a burst). */
export async function sampleRedis(port: number): Promise<RedisSample> {
  const out = await redisCli(port, ["INFO", "all"]);
  const calls: Record<string, number> = {};
  for (const match of out.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return {
    calls,
    cpuSeconds: field(out, "used_cpu_sys") + field(out, "used_cpu_user"),
    netInBytes: field(out, "total_net_input_bytes"),
    netOutBytes: field(out, "total_net_output_bytes"),
  };
}

/**
 * Redis's work per message between two samples: `cmd.NAME` per message for every command called, their
 * `cmd.total`, `redisCpuUs` and the bytes in and out. The harness's own INFO calls are left out.
 */
export function redisPerMessage(a: RedisSample, b: RedisSample, messages: number): Figures {
  const out: Figures = {};
  let total = 0;
  for (const [name, calls] of Object.entries(b.calls)) {
    if (name === "info") continue;
    const delta = calls - (a.calls[name] ?? 0);
    if (delta <= 0) continue;
    out[`cmd.${name}`] = delta / messages;
    total += delta;
  }
  out["cmd.total"] = total / messages;
  out.redisCpuUs = ((b.cpuSeconds - a.cpuSeconds) * 1e6) / messages;
  out.redisInBytes = (b.netInBytes - a.netInBytes) / messages;
  out.redisOutBytes = (b.netOutBytes - a.netOutBytes) / messages;
  return out;
}

/** `redis-benchmark -P 1000 PUBLISH` on one connection: what Redis does with nothing of webtalk around it. */
export async function publishYardstick(port: number, count: number, cores?: string): Promise<Figures> {
  const cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", String(port), "-c", "1", "-P", "1000", "-n", String(count), "--csv", "PUBLISH", "bench-yardstick", "hello"];
  const proc = Bun.spawn(cores ? ["taskset", "-c", cores, ...cmd] : cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track(proc);
  try {
    const [out, code] = await within(Promise.all([new Response(proc.stdout).text(), proc.exited]), "redis-benchmark PUBLISH", 120_000);
    // --csv prints a header, then "PUBLISH bench-yardstick hello","RPS",… with quoted numbers.
    const row = out.split("\n").find((line) => line.startsWith('"PUBLISH'));
    const perSec = row ? Number(row.split(",")[1]!.replaceAll('"', "")) : Number.NaN;
    if (code !== 0 || !Number.isFinite(perSec)) throw new Error(`redis-benchmark PUBLISH failed (${code}): ${out}`);
    return { perSec };
  } finally {
    proc.kill("SIGKILL");
    untrack(proc);
  }
}

async function redisCli(port: number, args: string[]): Promise<string> {
  const proc = Bun.spawn(["redis-cli", "-h", "127.0.0.1", "-p", String(port), ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track(proc);
  try {
    const [out, code] = await within(Promise.all([new Response(proc.stdout).text(), proc.exited]), `redis-cli ${args.join(" ")}`, 10_000);
    if (code !== 0) throw new Error(`redis-cli ${args.join(" ")} failed (${code})`);
    return out;
  } finally {
    proc.kill("SIGKILL");
    untrack(proc);
  }
}

function field(info: string, key: string): number {
  const match = new RegExp(`^${key}:([\\d.]+)`, "m").exec(info);
  return match ? Number(match[1]) : 0;
}
