// `npm run bench:modes`: what webtalk's modes cost against its plain mode, in one run with alternating
// rounds: fan-out to webtalk.v2 browsers (numbered messages), to Server-Sent Events browsers, and to one and two cluster nodes on
// Redis, how fast a v2 browser is replayed what it missed, and issue 15's cluster measures
// (scripts/bench/cluster-measures.ts). See docs/benchmarks.md.

import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { sampleProc } from "./bench/proc.ts";
import { canPin, pin, pinSelf, startServerProcess, track, untrack, type ServerProcess } from "./bench/processes.ts";
import { freePort, untilListening } from "./bench/redis.ts";
import { clusterRound } from "./bench/cluster-measures.ts";
import { renderCluster } from "./bench/cluster-report.ts";
import { fmt, med, range } from "./bench/format.ts";
import { closeSession, fanoutBurst, openSession, type Figures, type Target } from "./bench/scenarios.ts";
import { within } from "./bench/within.ts";
import { Workers } from "./bench/workers.ts";

const HELP = `npm run bench:modes -- [flags]

  --smoke            tiny sizes, one round (seconds): proves it runs
  --rounds N         alternating rounds (default 3)
  --sizes 1000,5000  subscribers for the fan-out
  --replay N         messages replayed to one v2 browser (default 50000), in memory, --data and --redis
  --replay-only      measure only the replay (no fan-out, no cluster measures)
  --fanout-only      measure only the fan-out (no replay, no cluster measures)
  --modes a,b        fan-out modes to run, of plain, v2, sse, cluster1, cluster2 (default: all)
  --baseline DIR     also run the fan-out and the replay through DIR/src/main.ts (another checkout: the
                     code before a change), alternating with this one in every round
  --burst N          pipelined shouts, then whispers, on one control connection (default 10000)
  --per-node N       browsers per node for those bursts (default 10)
  --idle-whispers N  whispers from node A to node B's users, node C idle (default 100000)
  --idle-users N     browsers on node B for them (default 1000)
  --yardstick N      redis-benchmark -P 1000 PUBLISH commands (default 1000000)
  --update-docs      rewrite the modes and cluster tables in docs/benchmarks.md
`;

const { values } = parseArgs({
  options: {
    smoke: { type: "boolean" },
    rounds: { type: "string" },
    sizes: { type: "string" },
    replay: { type: "string" },
    "replay-only": { type: "boolean" },
    "fanout-only": { type: "boolean" },
    modes: { type: "string" },
    baseline: { type: "string" },
    burst: { type: "string" },
    "per-node": { type: "string" },
    "idle-whispers": { type: "string" },
    "idle-users": { type: "string" },
    yardstick: { type: "string" },
    "update-docs": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const ROOT = resolve(import.meta.dir, "..");
const MAIN = resolve(ROOT, "src/main.ts");
const smoke = values.smoke === true;
const rounds = Number(values.rounds ?? (smoke ? 1 : 3));
const sizes = (values.sizes ?? (smoke ? "20" : "1000,5000")).split(",").map(Number);
const deliveries = smoke ? 2_000 : 2_000_000;
const replayCount = Number(values.replay ?? (smoke ? 200 : 50_000));
const replayOnly = values["replay-only"] === true;
const fanoutOnly = values["fanout-only"] === true;
const BUILDS: [string, string][] = [["", MAIN], ...(values.baseline ? [["before", resolve(values.baseline, "src/main.ts")] as [string, string]] : [])];
const pinning = !smoke && canPin();
const sizing = {
  perNode: Number(values["per-node"] ?? 10),
  burst: Number(values.burst ?? (smoke ? 200 : 10_000)),
  idleUsers: Number(values["idle-users"] ?? (smoke ? 20 : 1_000)),
  idleWhispers: Number(values["idle-whispers"] ?? (smoke ? 500 : 100_000)),
  yardstick: Number(values.yardstick ?? (smoke ? 10_000 : 1_000_000)),
};
const SERVER_CORES = "0";
const CLIENT_CORES = "1";
const base = ["--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--log-level", "info", "--admin", "off"];

type Mode = "plain" | "v2" | "sse" | "cluster, 1 node" | "cluster, 2 nodes";
const ALL_MODES: Mode[] = ["plain", "v2", "sse", "cluster, 1 node", "cluster, 2 nodes"];
const SHORT: Record<string, Mode> = { plain: "plain", v2: "v2", sse: "sse", cluster1: "cluster, 1 node", cluster2: "cluster, 2 nodes" };
const MODES: Mode[] = values.modes ? values.modes.split(",").map((name) => SHORT[name] ?? fail(`unknown mode ${name}`)) : ALL_MODES;
/** Where the replayed window lives: the server's memory, a data file, Redis. */
type ReplayMode = "memory" | "--data" | "--redis";
const REPLAY_MODES: ReplayMode[] = ["memory", "--data", "--redis"];

const log = (line: string) => process.stderr.write(`${line}\n`);
if (pinning) await pinSelf(CLIENT_CORES);
const redis = Bun.which("redis-server") ? await startRedis() : undefined;
const workers = await Workers.start(smoke ? 2 : 4, pinning ? CLIENT_CORES : undefined);
const results: Record<string, Figures[]> = {};
const replay: Record<string, Figures[]> = {};
const dataDir = mkdtempSync(join(tmpdir(), "webtalk-bench-replay-"));
const clusterRounds: Record<string, Figures>[] = [];
const started = performance.now();
try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? MODES : [...MODES].reverse();
    for (const n of replayOnly ? [] : sizes) {
      for (const mode of order) {
        if (mode.startsWith("cluster") && !redis) continue;
        for (const [build, main] of round % 2 === 0 ? BUILDS : [...BUILDS].reverse()) {
          const name = build ? `${mode}, ${build}` : mode;
          log(`round ${round + 1}/${rounds}  ${name}  ${n} browsers`);
          await withMode(mode, main, round, async (target) => {
            const { session, figures: login } = await openSession(target, workers, n, 64);
            try {
              await fanoutBurst(session, Math.max(n, deliveries / 10), 200_000);
              const burst = await fanoutBurst(session, deliveries, 200_000);
              (results[`${name}.${n}`] ??= []).push({ ...burst, rssPerBrowser: login.rssBytesPerConn! });
            } finally {
              await closeSession(session);
            }
          });
        }
      }
    }
    const replayOrder = round % 2 === 0 ? REPLAY_MODES : [...REPLAY_MODES].reverse();
    for (const mode of fanoutOnly ? [] : replayOrder) {
      if (mode === "--redis" && !redis) continue;
      for (const [build, main] of round % 2 === 0 ? BUILDS : [...BUILDS].reverse()) {
        const name = build ? `${mode}, ${build}` : mode;
        log(`round ${round + 1}/${rounds}  replay of ${replayCount} messages  ${name}`);
        const redisPid = mode === "--redis" ? redis!.pid : undefined;
        (replay[name] ??= []).push(await measureReplay(replayCount, main, replayArgs(mode, round), redisPid));
      }
    }
    if (replayOnly || fanoutOnly) continue;
    clusterRounds.push(
      await clusterRound(
        { ...sizing, workers, redis, start: startNodes, clientCores: pinning ? CLIENT_CORES : undefined, log },
        round,
      ),
    );
  }
} finally {
  await workers.stop();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

const took = `Run took ${Math.round((performance.now() - started) / 1000)} s.`;
const replayReport = renderReplay();
if (replayOnly) {
  process.stdout.write(`${replayReport}\n\n${took}\n`);
  if (values["update-docs"]) await updateDocs("replay", replayReport);
} else if (fanoutOnly) {
  process.stdout.write(`${renderModes()}\n\n${took}\n`);
} else {
  const report = renderModes();
  const cluster = `${renderCluster({ ...sizing, rounds: clusterRounds })}\n\n${took}`;
  process.stdout.write(`${report}\n\n${replayReport}\n\n${cluster}\n`);
  if (values["update-docs"]) {
    await updateDocs("modes", report);
    await updateDocs("replay", replayReport);
    await updateDocs("cluster", cluster);
  }
}

/** Starts the servers of one mode (two nodes for the two-node cluster) and measures through them. */
async function withMode(mode: Mode, main: string, round: number, fn: (target: Target) => Promise<void>): Promise<void> {
  const servers = await startNodes(mode, mode === "cluster, 2 nodes" ? 2 : 1, mode.startsWith("cluster"), round, main);
  try {
    const [first] = servers as [ServerProcess];
    await fn({
      ...first,
      name: mode,
      publicUrls: servers.map((s) => s.publicUrl),
      pids: servers.map((s) => s.pid),
      protocol: mode === "v2" ? "webtalk.v2" : mode === "sse" ? "sse" : undefined,
    });
  } finally {
    for (const s of servers) await s.stop();
  }
}

/** Starts `nodes` webtalk processes, on Redis under a fresh prefix when `clustered`; stops them all if one fails. */
async function startNodes(name: string, nodes: number, clustered: boolean, round: number, main = MAIN): Promise<ServerProcess[]> {
  const cluster = clustered ? ["--redis", redis!.url, "--redis-prefix", `bench${round}-${Date.now()}:`] : [];
  const servers: ServerProcess[] = [];
  try {
    for (let i = 0; i < nodes; i++) {
      servers.push(await startServerProcess(`${name} #${i + 1}`, [process.execPath, main, ...base, ...cluster], pinning ? SERVER_CORES : undefined));
    }
    return servers;
  } catch (error) {
    for (const s of servers) await s.stop();
    throw error;
  }
}

/** The flags that put a replay server's window in `mode`: a fresh data file or a fresh Redis prefix. */
function replayArgs(mode: ReplayMode, round: number): string[] {
  const fresh = `${round}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  if (mode === "--data") return ["--data", join(dataDir, `replay-${fresh}.db`)];
  if (mode === "--redis") return ["--redis", redis!.url, "--redis-prefix", `benchreplay${fresh}:`];
  return [];
}

/** One v2 browser comes back after `count` shouts to its channel: how fast is it replayed them? */
async function measureReplay(count: number, main: string, modeArgs: string[], redisPid?: number): Promise<Figures> {
  const server = await startServerProcess(
    "replay",
    [process.execPath, main, ...base, ...modeArgs, "--replay-count", String(count), "--replay-bytes", String(1 << 30)],
    pinning ? SERVER_CORES : undefined,
  );
  try {
    const ctl = await connectControl(server);
    const token = (await ctl.call("[newuser]")).slice(5);
    const first = await openV2(server.publicUrl, token);
    const epoch = (await first.next()).slice("#epoch ".length);
    first.ws.close();
    await first.closed;
    const shouts = Array.from({ length: count }, (_, i) => `[shout] 1!m${i + 1}`);
    // Redis's CPU counts too in --redis: the windows are read and written by its scripts.
    const cpu = () => sampleProc(server.pid).cpuUs + (redisPid === undefined ? 0 : sampleProc(redisPid).cpuUs);
    const a0 = cpu();
    await ctl.pipelined(shouts);
    // The shouts' own cost (numbering and the window append) shows an append path made slower.
    const appendUsPer = (cpu() - a0) / count;
    const s0 = cpu();
    const started = performance.now();
    const back = await openV2(server.publicUrl, `${token}!${epoch}!1:0`);
    await back.count(count + 1); // the epoch notice, then every message
    const seconds = (performance.now() - started) / 1000;
    const s1 = cpu();
    back.ws.close();
    ctl.close();
    return { replayed: count, perSec: count / seconds, cpuUsPer: (s1 - s0) / count, ms: seconds * 1000, appendUsPer };
  } finally {
    await server.stop();
  }
}

function renderModes(): string {
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)} (${rounds} alternating rounds, medians; min–max in brackets), ` +
      `${navigator.hardwareConcurrency} cores, Bun ${Bun.version}${pinning ? ", servers on core 0, load generator on core 1" : ""}.`,
    "",
    "| fan-out | N | delivered msg/s | server CPU µs per delivery | ratio to plain | p99 ms | lost | server RSS per browser |",
    "|---|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const n of sizes) {
    for (const [mode, build] of MODES.flatMap((mode) => BUILDS.map(([build]) => [mode, build] as const))) {
      const name = build ? `${mode}, ${build}` : mode;
      const rows = results[`${name}.${n}`];
      if (!rows) continue;
      const cpu = med(rows, "cpuUsPer");
      // Each build's ratio is to its own plain mode when that ran, as the builds alternate in the same rounds.
      const plain = med(results[`${build ? `plain, ${build}` : "plain"}.${n}`] ?? results[`plain.${n}`], "cpuUsPer");
      lines.push(
        `| ${name} | ${n.toLocaleString("en")} | ${fmt(med(rows, "perSec"), 0)} | ${fmt(cpu, 3)} ${range(rows, "cpuUsPer", 3)} | ` +
          `${fmt(cpu / plain, 2)} | ${fmt(med(rows, "p99Ms"), 1)} | ${rows.reduce((s, r) => s + (r.lost ?? 0), 0)} | ${fmt(med(rows, "rssPerBrowser") / 1024, 1)} KB |`,
      );
    }
  }
  return lines.join("\n");
}

/** The replay rows: resume from offset 0, per mode (and per build with --baseline). */
function renderReplay(): string {
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)} (${rounds} alternating rounds, medians; min–max in brackets), ` +
      `${navigator.hardwareConcurrency} cores, Bun ${Bun.version}${pinning ? ", servers on core 0, load generator on core 1" : ""}.`,
    "",
    "CPU is the server's, and redis-server's added in `--redis` (its scripts read and write the windows).",
    "",
    "| replay to one `webtalk.v2` browser, resume from offset 0 | messages | messages/s | CPU µs per message | time | CPU µs per shout before it |",
    "|---|--:|--:|--:|--:|--:|",
  ];
  for (const [name, rows] of Object.entries(replay)) {
    lines.push(
      `| ${name} | ${replayCount.toLocaleString("en")} | ${fmt(med(rows, "perSec"), 0)} ${range(rows, "perSec", 0)} | ` +
        `${fmt(med(rows, "cpuUsPer"), 2)} ${range(rows, "cpuUsPer", 2)} | ${fmt(med(rows, "ms"), 0)} ms | ${fmt(med(rows, "appendUsPer"), 2)} ${range(rows, "appendUsPer", 2)} |`,
    );
  }
  return lines.join("\n");
}

/** Replaces the block between `<!-- NAME:start -->` and `<!-- NAME:end -->` (appended when absent). */
async function updateDocs(name: string, report: string): Promise<void> {
  const path = resolve(ROOT, "docs/benchmarks.md");
  const doc = await Bun.file(path).text();
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${report}\n${end}`;
  const next = doc.includes(start) ? doc.replace(new RegExp(`${start}[\\s\\S]*?${end}`), block) : `${doc.trimEnd()}\n\n${block}\n`;
  await Bun.write(path, next);
}

async function startRedis(): Promise<{ url: string; port: number; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const proc: Subprocess = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  track(proc);
  // Redis gets the load generator's core: the webtalk nodes alone share the server core.
  if (pinning) await pin(proc.pid, CLIENT_CORES);
  await untilListening(port, proc);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: proc.pid,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      untrack(proc);
    },
  };
}

/** A minimal control connection for the replay measurement. */
async function connectControl(server: ServerProcess) {
  const { ControlConnection } = await import("./bench/control.ts");
  const ctl = await ControlConnection.open(server.privateHost, server.privatePort);
  return {
    call: async (payload: string) => (await ctl.callMany([payload]))[0]!,
    pipelined: (payloads: string[]) => ctl.callMany(payloads),
    close: () => ctl.close(),
  };
}

/** A v2 browser (Bun's WebSocket client): counts what arrives, in order. */
async function openV2(url: string, login: string) {
  const ws = new WebSocket(url, "webtalk.v2");
  const queue: string[] = [];
  let received = 0;
  let wake: (() => void) | undefined;
  ws.onmessage = (event) => {
    received++;
    if (queue.length < 10) queue.push(String(event.data));
    wake?.();
  };
  const closed = new Promise<void>((done) => (ws.onclose = () => done()));
  await within(new Promise((done) => (ws.onopen = done)), "a v2 browser to open", 10_000);
  ws.send(login);
  const waitFor = async (test: () => boolean, what: string) =>
    within(
      (async () => {
        while (!test()) await new Promise<void>((done) => (wake = done));
      })(),
      what,
      120_000,
    );
  return {
    ws,
    closed,
    async next(): Promise<string> {
      await waitFor(() => queue.length > 0, "a message");
      return queue.shift()!;
    },
    count: (n: number) => waitFor(() => received >= n, `${n} messages`),
  };
}

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}
