// Issue 15's pipelining figure: shouts/s and whispers/s pipelined on ONE control connection to a
// 2-node cluster (one redis-server), 10 webtalk.v2 browsers per node. Rounds alternate shouts and
// whispers; every round waits for every reply and for every browser to receive what it was sent.
//
//   bun scripts/pipeline-rate.ts [--count 20000] [--rounds 3] [--server-env KEY=VALUE] [--redis URL]
//
// --redis runs the nodes on that Redis instead of a redis-server of its own: e.g. a node of a Redis
// Cluster, to compare the layouts on one machine.
// --server-env passes an environment variable to both nodes (e.g. to compare an A/B switch).

import type { Subprocess } from "bun";
import { parseArgs } from "node:util";
import { ControlConnection } from "./bench/control.ts";
import { freePort, untilListening } from "./bench/redis.ts";
import { spawnServer, MAIN, LOOPBACK, type Spawned } from "../test/process.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20000" },
    rounds: { type: "string", default: "3" },
    "server-env": { type: "string", multiple: true },
    redis: { type: "string" },
  },
});
const COUNT = Number(values.count);
const ROUNDS = Number(values.rounds);
const BROWSERS_PER_NODE = 10;
/** A prefix of this run's own: a shared Redis may hold an earlier run's. */
const PREFIX = `rate${Date.now()}:`;
const env: Record<string, string> = {};
for (const pair of values["server-env"] ?? []) {
  const [key, value] = pair.split("=") as [string, string];
  env[key] = value;
}

const port = await freePort();
const redis: Subprocess | undefined = values.redis
  ? undefined
  : Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
const nodes: Spawned[] = [];
const pages: WebSocket[] = [];
try {
  if (redis) await untilListening(port, redis);
  const url = values.redis ?? `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 2; i++) {
    nodes.push(await spawnServer([process.execPath, MAIN, ...LOOPBACK, "--redis", url, "--redis-prefix", PREFIX, "--lease", "5"], { env }));
  }
  const ctl = await ControlConnection.open("127.0.0.1", nodes[0]!.privatePort);
  // Every browser is in channel 1; the whisper target is the first browser on node B.
  let received = 0;
  let wanted = 0;
  let reached = Promise.withResolvers<void>();
  const tokens: string[] = [];
  for (let i = 0; i < 2 * BROWSERS_PER_NODE; i++) tokens.push((await ctl.callMany(["[newuser]"]))[0]!.slice(5));
  for (let i = 0; i < tokens.length; i++) {
    const node = nodes[i < BROWSERS_PER_NODE ? 0 : 1]!;
    const ws = new WebSocket(node.publicUrl, "webtalk.v2");
    const ready = Promise.withResolvers<void>();
    ws.onmessage = (event) => {
      const text = String(event.data);
      if (text.startsWith("#epoch")) return ready.resolve();
      if (++received === wanted) reached.resolve();
    };
    ws.onopen = () => ws.send(tokens[i]!);
    await ready.promise;
    pages.push(ws);
  }
  const target = tokens[BROWSERS_PER_NODE]!.split("!")[0]!;
  const measure = async (kind: "shout" | "whisper", round: number) => {
    const payloads = Array.from({ length: COUNT }, (_, i) => (kind === "shout" ? `[shout] 1!r${round}m${i}` : `[whisper] ${target}!r${round}m${i}`));
    received = 0;
    wanted = kind === "shout" ? COUNT * pages.length : COUNT;
    reached = Promise.withResolvers<void>();
    const started = performance.now();
    const replies = await ctl.callMany(payloads);
    const answered = performance.now();
    await Promise.race([reached.promise, Bun.sleep(60_000)]);
    const delivered = performance.now();
    const bad = replies.filter((r) => r !== "[ok] message sent").length;
    return { answered: COUNT / ((answered - started) / 1000), delivered: COUNT / ((delivered - started) / 1000), bad, missing: wanted - received };
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of ["shout", "whisper"] as const) {
      const r = await measure(kind, round);
      console.log(
        `round ${round} ${kind.padEnd(7)} ${COUNT} pipelined: ${Math.round(r.answered)}/s answered, ${Math.round(r.delivered)}/s delivered` +
          (r.bad || r.missing ? ` (bad replies ${r.bad}, missing deliveries ${r.missing})` : ""),
      );
    }
  }
  ctl.close();
} finally {
  for (const ws of pages) ws.close();
  for (const node of nodes) await node.stop("SIGKILL");
  redis?.kill("SIGKILL");
  await redis?.exited;
}
