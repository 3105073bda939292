// Issue 15's measures, one round of each: pipelined shouts and whispers on one control connection (plain
// and a 2-node cluster, with Redis's commands, CPU and bytes per message), the CPU of a node that hosts
// nothing for 100,000 whispers, and Redis's own PUBLISH throughput as the yardstick.

import { cpuBetween, sampleProc } from "./proc.ts";
import { pipelinedBurst, type BurstKind } from "./pipelined.ts";
import type { ServerProcess } from "./processes.ts";
import { publishYardstick, redisPerMessage, sampleRedis } from "./redis-stats.ts";
import { closeSession, openSession, whispers, type Figures, type Target } from "./scenarios.ts";
import type { Workers } from "./workers.ts";

export interface ClusterBench {
  workers: Workers;
  /** The shared Redis, or undefined (then only plain runs). */
  redis: { url: string; port: number } | undefined;
  /** Starts `nodes` webtalk processes, clustered on Redis when `clustered`; the caller's finally stops them. */
  start(name: string, nodes: number, clustered: boolean, round: number): Promise<ServerProcess[]>;
  /** Browsers per node for the pipelined bursts, messages per burst, whispers to the idle node's neighbour. */
  perNode: number;
  burst: number;
  idleUsers: number;
  idleWhispers: number;
  yardstick: number;
  clientCores?: string;
  log(line: string): void;
}

export type PipelineMode = "plain" | "cluster, 2 nodes";
const PIPELINE_MODES: PipelineMode[] = ["plain", "cluster, 2 nodes"];

/** One round; results are keyed `pipelined.MODE.KIND`, `idle` and `yardstick`. */
export async function clusterRound(bench: ClusterBench, round: number): Promise<Record<string, Figures>> {
  const out: Record<string, Figures> = {};
  const order = round % 2 === 0 ? PIPELINE_MODES : [...PIPELINE_MODES].reverse();
  for (const mode of order) {
    if (mode !== "plain" && !bench.redis) continue;
    bench.log(`round ${round + 1}  pipelined shouts and whispers, ${mode}, ${bench.perNode} browsers per node`);
    const figures = await pipelined(bench, mode, round);
    for (const kind of ["shout", "whisper"] as const) out[`pipelined.${mode}.${kind}`] = figures[kind];
  }
  if (bench.redis) {
    bench.log(`round ${round + 1}  ${bench.idleWhispers} whispers from node A to ${bench.idleUsers} users on node B; node C hosts nothing`);
    out.idle = await idleNode(bench, round);
    bench.log(`round ${round + 1}  redis-benchmark -P 1000 PUBLISH, ${bench.yardstick} commands`);
    out.yardstick = await publishYardstick(bench.redis.port, bench.yardstick, bench.clientCores);
  }
  return out;
}

async function pipelined(bench: ClusterBench, mode: PipelineMode, round: number): Promise<Record<BurstKind, Figures>> {
  const nodes = mode === "plain" ? 1 : 2;
  const servers = await bench.start(mode, nodes, mode !== "plain", round);
  try {
    const { session } = await openSession(targetOf(mode, servers, servers), bench.workers, bench.perNode * nodes, 16);
    try {
      const result = {} as Record<BurstKind, Figures>;
      for (const kind of ["shout", "whisper"] as const) {
        await pipelinedBurst(session, kind, Math.max(10, bench.burst / 10)); // warm-up
        const r0 = bench.redis && mode !== "plain" ? await sampleRedis(bench.redis.port) : undefined;
        const figures = await pipelinedBurst(session, kind, bench.burst);
        const redis = r0 ? redisPerMessage(r0, await sampleRedis(bench.redis!.port), bench.burst) : {};
        result[kind] = { ...figures, ...redis };
      }
      return result;
    } finally {
      await closeSession(session);
    }
  } finally {
    for (const s of servers) await s.stop();
  }
}

/**
 * Three nodes: the backend on A, every browser on B, nothing on C. C is "a node that hosts nothing for
 * the traffic": its CPU is reported as a share of the sending node's (A) and of the hosting node's (B).
 */
async function idleNode(bench: ClusterBench, round: number): Promise<Figures> {
  const servers = await bench.start("idle", 3, true, round);
  try {
    const [a, b] = servers as [ServerProcess, ServerProcess, ServerProcess];
    const { session } = await openSession(targetOf("idle", [a], [b], servers), bench.workers, bench.idleUsers, 64);
    try {
      await whispers(session, Math.max(10, bench.idleWhispers / 10)); // warm-up
      const r0 = await sampleRedis(bench.redis!.port);
      const before = servers.map((s) => sampleProc(s.pid));
      const figures = await whispers(session, bench.idleWhispers);
      const after = servers.map((s) => sampleProc(s.pid));
      // With three nodes on the bus against two in the pipelined burst: the difference is what one more
      // subscribed node costs Redis per message (the 50-node estimate in docs/benchmarks.md uses it).
      const redis = redisPerMessage(r0, await sampleRedis(bench.redis!.port), bench.idleWhispers);
      const [cpuA, cpuB, cpuC] = before.map((s0, i) => cpuBetween(s0, after[i]!).us / 1e6) as [number, number, number];
      return {
        perSec: figures.perSec!,
        lost: figures.lost!,
        cpuA,
        cpuB,
        cpuC,
        cPctOfA: (100 * cpuC) / cpuA,
        cPctOfB: (100 * cpuC) / cpuB,
        cUsPerWhisper: (cpuC * 1e6) / bench.idleWhispers,
        redisCpuUs: redis.redisCpuUs!,
        redisOutBytes: redis.redisOutBytes!,
        redisCommands: redis["cmd.total"]!,
      };
    } finally {
      await closeSession(session);
    }
  } finally {
    for (const s of servers) await s.stop();
  }
}

// The control connection goes to the first of `control`, browsers are spread over `hosts`, and the CPU
// of every process in `all` counts.
function targetOf(name: string, control: ServerProcess[], hosts: ServerProcess[], all = hosts): Target {
  const [first] = control as [ServerProcess];
  return { ...first, name, publicUrls: hosts.map((s) => s.publicUrl), pids: all.map((s) => s.pid) };
}
