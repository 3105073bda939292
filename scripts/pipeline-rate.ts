// Issue 15's pipelining figure: shouts/s and whispers/s pipelined on ONE control connection to a
// 2-node cluster (one redis-server), 10 webtalk.v2 browsers per node, with the CPU each message costs
// the sending node, the other node and Redis, and the round trip of a lone command (one at a time).
// Every burst waits for every reply and for every browser to receive what it was sent.
//
//   bun scripts/pipeline-rate.ts [--count 20000] [--rounds 3] [--serial 2000] [--baseline DIR]
//                                [--yardstick 1000000] [--server-env KEY=VALUE] [--redis URL]
//
// --baseline DIR also runs DIR/src/main.ts (another checkout: the code before a change), alternating
// with this one in every round on the same Redis, and prints the ratio of each figure.
// --yardstick runs `redis-benchmark -c 1 -P 1000 PUBLISH` each round (0: not), as bench:modes does.
// --redis runs the nodes on that Redis instead of a redis-server of its own: e.g. a node of a Redis
// Cluster, to compare the layouts on one machine (no Redis CPU or yardstick then).
// --server-env passes an environment variable to both nodes (e.g. to compare an A/B switch).

import type { Subprocess } from "bun";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ControlConnection } from "./bench/control.ts";
import { fmt, med, range } from "./bench/format.ts";
import { sampleProc } from "./bench/proc.ts";
import { freePort, untilListening } from "./bench/redis.ts";
import { publishYardstick, redisPerMessage, sampleRedis } from "./bench/redis-stats.ts";
import type { Figures } from "./bench/scenarios.ts";
import { spawnServer, MAIN, LOOPBACK, type Spawned } from "../test/process.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20000" },
    rounds: { type: "string", default: "3" },
    serial: { type: "string", default: "2000" },
    baseline: { type: "string" },
    yardstick: { type: "string", default: "1000000" },
    "server-env": { type: "string", multiple: true },
    redis: { type: "string" },
  },
});
const COUNT = Number(values.count);
const ROUNDS = Number(values.rounds);
const SERIAL = Number(values.serial);
const YARDSTICK = Number(values.yardstick);
const BROWSERS_PER_NODE = 10;
const BUILDS: [string, string][] = [["this", MAIN], ...(values.baseline ? [["before", resolve(values.baseline, "src/main.ts")] as [string, string]] : [])];
const env: Record<string, string> = {};
for (const pair of values["server-env"] ?? []) {
  const [key, value] = pair.split("=") as [string, string];
  env[key] = value;
}
type Kind = "shout" | "whisper";

const port = await freePort();
const redis: Subprocess | undefined = values.redis
  ? undefined
  : Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
const url = values.redis ?? `redis://127.0.0.1:${port}`;
const results: Record<string, Figures[]> = {};
const yardsticks: Figures[] = [];
try {
  if (redis) await untilListening(port, redis);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [build, main] of round % 2 === 1 ? BUILDS : [...BUILDS].reverse()) {
      const figures = await measureBuild(main, `rate${Date.now()}r${round}${build}:`, round);
      for (const [key, row] of Object.entries(figures)) (results[`${build}.${key}`] ??= []).push(row);
      const line = (kind: string) => {
        const f = figures[kind]!;
        const cpu = f.aUs === undefined ? "" : `, CPU µs/msg: sending ${fmt(f.aUs, 1)}, other ${fmt(f.bUs!, 1)}, Redis ${fmt(f.redisCpuUs ?? Number.NaN, 1)}`;
        return `${kind} ${Math.round(f.perSec!)}/s${cpu}${f.missing || f.bad ? ` (bad replies ${f.bad}, missing deliveries ${f.missing})` : ""}`;
      };
      console.log(`round ${round} ${build.padEnd(6)} ${line("shout")}; ${line("whisper")}; lone whisper ${fmt(figures.serial!.us!, 0)} µs`);
    }
    if (redis && YARDSTICK > 0) {
      yardsticks.push(await publishYardstick(port, YARDSTICK));
      console.log(`round ${round} yardstick redis-benchmark -c 1 -P 1000 PUBLISH: ${Math.round(yardsticks.at(-1)!.perSec!)}/s`);
    }
  }
  report();
} finally {
  redis?.kill("SIGKILL");
  await redis?.exited;
}

/** One build's figures: a fresh pair of nodes under its own prefix, stopped (by PID) afterwards. */
async function measureBuild(main: string, prefix: string, round: number): Promise<Record<string, Figures>> {
  const nodes: Spawned[] = [];
  const pages: WebSocket[] = [];
  try {
    for (let i = 0; i < 2; i++) nodes.push(await spawnServer([process.execPath, main, ...LOOPBACK, "--redis", url, "--redis-prefix", prefix, "--lease", "5"], { env }));
    const ctl = await ControlConnection.open("127.0.0.1", nodes[0]!.privatePort);
    // Every browser is in channel 1; the whisper target is the first browser on node B.
    let received = 0;
    let wanted = 0;
    let reached = Promise.withResolvers<void>();
    const tokens: string[] = [];
    for (let i = 0; i < 2 * BROWSERS_PER_NODE; i++) tokens.push((await ctl.callMany(["[newuser]"]))[0]!.slice(5));
    for (let i = 0; i < tokens.length; i++) {
      const ws = new WebSocket(nodes[i < BROWSERS_PER_NODE ? 0 : 1]!.publicUrl, "webtalk.v2");
      const ready = Promise.withResolvers<void>();
      ws.onmessage = (event) => {
        if (String(event.data).startsWith("#epoch")) return ready.resolve();
        if (++received === wanted) reached.resolve();
      };
      ws.onopen = () => ws.send(tokens[i]!);
      await ready.promise;
      pages.push(ws);
    }
    const target = tokens[BROWSERS_PER_NODE]!.split("!")[0]!;
    const burst = async (kind: Kind, count: number, tag: string): Promise<Figures> => {
      const payloads = Array.from({ length: count }, (_, i) => (kind === "shout" ? `[shout] 1!${tag}m${i}` : `[whisper] ${target}!${tag}m${i}`));
      received = 0;
      wanted = kind === "shout" ? count * pages.length : count;
      reached = Promise.withResolvers<void>();
      const r0 = redis ? await sampleRedis(port) : undefined;
      const [a0, b0] = [sampleProc(nodes[0]!.proc.pid), sampleProc(nodes[1]!.proc.pid)];
      const started = performance.now();
      const replies = await ctl.callMany(payloads, 120_000);
      await Promise.race([reached.promise, Bun.sleep(60_000)]);
      const delivered = performance.now();
      const [a1, b1] = [sampleProc(nodes[0]!.proc.pid), sampleProc(nodes[1]!.proc.pid)];
      const perRedis = r0 ? redisPerMessage(r0, await sampleRedis(port), count) : {};
      const bad = replies.filter((r) => r !== "[ok] message sent").length;
      return { perSec: count / ((delivered - started) / 1000), aUs: (a1.cpuUs - a0.cpuUs) / count, bUs: (b1.cpuUs - b0.cpuUs) / count, bad, missing: wanted - received, ...perRedis };
    };
    const out: Record<string, Figures> = {};
    for (const kind of ["shout", "whisper"] as const) {
      await burst(kind, Math.max(10, COUNT / 10), `w${round}`); // warm-up
      out[kind] = await burst(kind, COUNT, `r${round}`);
    }
    // A lone command's round trip: one whisper at a time, each reply awaited (the median of SERIAL).
    const times: number[] = [];
    for (let i = 0; i < SERIAL; i++) {
      const t0 = performance.now();
      await ctl.call(`[whisper] ${target}!s${i}`);
      times.push((performance.now() - t0) * 1000);
    }
    times.sort((x, y) => x - y);
    out.serial = { us: times[Math.floor(times.length / 2)] ?? Number.NaN };
    ctl.close();
    return out;
  } finally {
    for (const ws of pages) ws.close();
    for (const node of nodes) await node.stop("SIGKILL");
  }
}

function report(): void {
  const yard = med(yardsticks, "perSec");
  console.log(`\nMedians over ${ROUNDS} round(s), min–max in brackets${yardsticks.length ? `; yardstick ${fmt(yard, 0)}/s ${range(yardsticks, "perSec", 0)}` : ""}:`);
  console.log("| build | command | messages/s | share of yardstick | CPU µs/msg sending node | other node | Redis | Redis commands/msg | lost |");
  console.log("|---|---|--:|--:|--:|--:|--:|--:|--:|");
  for (const [build] of BUILDS) {
    for (const kind of ["shout", "whisper"]) {
      const rows = results[`${build}.${kind}`];
      const rate = med(rows, "perSec");
      console.log(
        `| ${build} | [${kind}] | ${fmt(rate, 0)} ${range(rows, "perSec", 0)} | ${fmt(rate / yard, 4)} | ${fmt(med(rows, "aUs"), 1)} ${range(rows, "aUs", 1)} | ` +
          `${fmt(med(rows, "bUs"), 1)} | ${fmt(med(rows, "redisCpuUs"), 1)} | ${fmt(med(rows, "cmd.total"), 2)} | ${(rows ?? []).reduce((s, r) => s + (r.missing ?? 0), 0)} |`,
      );
    }
    console.log(`| ${build} | lone [whisper] round trip | ${fmt(med(results[`${build}.serial`], "us"), 0)} µs ${range(results[`${build}.serial`], "us", 0)} | | | | | | |`);
  }
  if (BUILDS.length < 2) return;
  for (const [key, label] of [["perSec", "rate"], ["aUs", "sending node CPU"], ["bUs", "other node CPU"], ["redisCpuUs", "Redis CPU"]] as const) {
    const ratios = ["shout", "whisper"].map((kind) => `${kind} ${fmt(med(results[`this.${kind}`], key) / med(results[`before.${kind}`], key), 2)}`);
    console.log(`this / before, ${label}: ${ratios.join(", ")}`);
  }
  console.log(`this / before, lone whisper round trip: ${fmt(med(results["this.serial"], "us") / med(results["before.serial"], "us"), 2)}`);
}
