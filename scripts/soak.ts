// `bun run soak`: many browsers and several backends doing random whisper/shout/join/leave/kick/kill and
// browsers leaving and coming back, for a given time; then it proves every message that should have
// arrived arrived exactly once, in order per sender, and nowhere else, and that the server's memory came
// back near where it was after warm-up. One verdict line on stdout; exit 0 on PASS, 1 on FAIL.
//
//   bun run soak -- --duration 60 --browsers 500 --backends 4 [--seed N] [--workers N] [--rate N] [--window N]
//     --rate: commands per second per backend (default 2000; 0 = as fast as --window, default 64, allows)
//     --workers: browser processes (default one per 5,000 browsers)
//     --warmup: seconds of load before the reference RSS is read (default half the duration, at most 10)
//   bun run soak -- --public ws://HOST:PORT/webtalk --private HOST:PORT [--pid PID]   (an existing server)
//   bun run soak -- --sources 100000 --duration 60 [--bytes 1000] [--private HOST:PORT --pid PID]
//     whispers to that many distinct offline users in turn (default flags: every whisper held and in a
//     replay window) and passes when RSS stays flat after warm-up; no browsers (scripts/soak/sources.ts)

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ControlClient } from "../test/helpers.ts";
import { MAIN, spawnServer, type Spawned } from "../test/process.ts";
import { chooseSeed, createRandom } from "../test/random.ts";
import { Backend } from "./soak/backend.ts";
import { BrowserPool } from "./soak/pool.ts";
import { Problems } from "./soak/problems.ts";
import { soakSources } from "./soak/sources.ts";
import { emptyVerdict } from "./soak/verify.ts";

const { values: flags } = parseArgs({
  options: {
    duration: { type: "string", default: "60" },
    browsers: { type: "string", default: "500" },
    backends: { type: "string", default: "4" },
    workers: { type: "string" },
    seed: { type: "string" },
    rate: { type: "string", default: "2000" },
    window: { type: "string", default: "64" },
    warmup: { type: "string" },
    public: { type: "string" },
    private: { type: "string" },
    pid: { type: "string" },
    sources: { type: "string" },
    bytes: { type: "string", default: "1000" },
    help: { type: "boolean", default: false },
  },
});

if (flags.help) {
  const lines = readFileSync(import.meta.path, "utf8").split("\n");
  const header = lines.slice(0, lines.findIndex((line) => !line.startsWith("//")));
  console.log(header.map((line) => line.slice(3)).join("\n"));
  process.exit(0);
}

const durationS = positive("duration", flags.duration);
const browsers = positive("browsers", flags.browsers);
const backendCount = positive("backends", flags.backends);
const workers = flags.workers === undefined ? Math.ceil(browsers / 5000) : positive("workers", flags.workers);
const rate = whole("rate", flags.rate);
const window = positive("window", flags.window);
const seed = chooseSeed(flags.seed);
/** Load before the reference RSS is taken: long enough for the server's heap to reach its working size. */
const warmUpS = flags.warmup === undefined ? Math.min(10, durationS / 2) : whole("warmup", flags.warmup);
/** Memory may end this far above its post-warm-up level: 20 MB or 25 %, whichever is larger. */
const RSS_SLACK_MB = 20;
const RSS_SLACK_RATIO = 0.25;
const RSS_SETTLE_MS = 30_000;
/** Longest wait for one phase (all online, everything killed): a fault fails the run rather than hanging it. */
const PHASE_MS = 20_000 + browsers;

// Stopped from outside: exit through the exit handlers, which kill the server process by its PID (and the
// workers exit when their IPC channel closes), so nothing is left running.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`soak: ${signal}: stopping\n`);
    process.exit(1);
  });
}

if (flags.sources !== undefined) {
  const pass = await soakSources({
    sources: positive("sources", flags.sources),
    bytes: positive("bytes", flags.bytes),
    durationS,
    private: flags.private,
    pid: flags.pid === undefined ? undefined : Number(flags.pid),
    log: (text) => process.stderr.write(`soak: ${text}\n`),
  });
  process.exit(pass ? 0 : 1);
}

const problems = new Problems();
const r = createRandom(seed);
const log = (text: string) => process.stderr.write(`soak: ${text}\n`);
let server: Spawned | undefined;
let pool: BrowserPool | undefined;
const backends: Backend[] = [];
let verdictLine: string;
let pass = false;

try {
  log(`seed ${seed}; ${durationS}s, ${browsers} browsers in ${workers} worker(s), ${backendCount} backends`);
  if (flags.public === undefined) {
    server = await spawnServer([process.execPath, MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0"]);
  } else if (flags.private === undefined) throw new Error("--public needs --private too");
  const publicUrl = server?.publicUrl ?? flags.public!;
  const privatePort = server?.privatePort ?? Number(flags.private!.split(":").at(-1));
  const pid = server?.proc.pid ?? (flags.pid === undefined ? undefined : Number(flags.pid));
  pool = await BrowserPool.start(publicUrl, workers);

  for (let b = 1; b <= backendCount; b++) {
    const users = Math.floor(browsers / backendCount) + (b <= browsers % backendCount ? 1 : 0);
    const channels = Math.max(2, Math.round(users / 10));
    const options = { index: b, privatePort, users, channels, random: r.fork(), window, rate, browsers: pool, problems };
    backends.push(await Backend.start(options));
  }
  await Promise.all(backends.map((b) => b.allOnline(PHASE_MS)));
  log(`${browsers} browsers online`);

  const started = Date.now();
  const end = started + durationS * 1000;
  const warmUpEnd = started + warmUpS * 1000;
  const progress = setInterval(() => log(`${Math.round((Date.now() - started) / 1000)}s: ${sum((b) => b.commands)} commands, ${sum((b) => b.messages)} messages, ${problems.count} problems`), 10_000);
  let rssWarm: number | undefined;
  try {
    await Promise.all(backends.map((b) => b.run(warmUpEnd)));
    rssWarm = pid === undefined ? undefined : rssMb(pid);
    await Promise.all(backends.map((b) => b.run(end)));
  } finally {
    clearInterval(progress);
  }

  // Every browser back (held whispers delivered), channels checked, then everything killed.
  await Promise.all(backends.map((b) => b.allOnline(PHASE_MS)));
  await Promise.all(backends.map((b) => b.checkChannels()));
  await Promise.all(backends.map((b) => b.killEverything(PHASE_MS)));
  if (pool.live !== 0) problems.add(`${pool.live} sessions never reported their end`);
  if (server) await checkEmpty(server.privatePort);

  const verdict = emptyVerdict();
  for (const backend of backends) backend.verify(verdict);
  const settled = pid === undefined || rssWarm === undefined ? undefined : await settledRss(pid, rssWarm);
  const rss = settled?.mb;
  const rssOk = rss === undefined || rssWarm === undefined || rss <= rssLimit(rssWarm);
  const clean = verdict.lost + verdict.duplicated + verdict.outOfOrder + verdict.misdelivered + problems.count === 0;
  pass = clean && rssOk;
  const memory =
    rss === undefined || rssWarm === undefined
      ? "rss not measured (no --pid)"
      : `rss ${rssWarm} MB after warm-up → ${rss} MB ${Math.round(settled!.afterMs / 1000)}s after the end ` +
        `(limit ${rssLimit(rssWarm)} MB: +${RSS_SLACK_MB} MB or +${RSS_SLACK_RATIO * 100}%)`;
  verdictLine =
    `soak: ${pass ? "PASS" : "FAIL"} ${durationS}s ${browsers} browsers ${backendCount} backends seed ${seed}: ` +
    `${n(sum((b) => b.messages))} messages, ${n(verdict.expected)} deliveries, ${n(verdict.lost)} lost, ` +
    `${n(verdict.duplicated)} duplicated, ${n(verdict.outOfOrder)} out of order, ${n(verdict.misdelivered)} misdelivered, ` +
    `${n(problems.count)} wrong replies/events/close codes, ${n(verdict.inFlight)} in flight when a browser left; ` +
    `${n(sum((b) => b.commands))} commands; ${memory}`;
  const done = (key: keyof Backend["done"]) => n(sum((b) => b.done[key]));
  log(
    `${done("sessions")} browser sessions: ${done("left")} left by themselves, ${done("kicks")} kicks, ${done("kills")} kills; ` +
      `${done("heldAtLogin")} held whispers delivered at a login`,
  );
  for (const example of [...verdict.examples, ...problems.examples]) log(`  ${example}`);
} catch (error) {
  verdictLine = `soak: FAIL ${durationS}s ${browsers} browsers ${backendCount} backends seed ${seed}: ${(error as Error).message}`;
  for (const example of problems.examples) log(`  ${example}`);
} finally {
  for (const backend of backends) backend.close();
  await pool?.stop().catch((error: unknown) => log(`stopping the workers: ${(error as Error).message}`));
  if (server) {
    const code = await server.stop();
    if (code !== 0) {
      pass = false;
      log(`the server exited with ${code}; its output ends with:\n${server.output().slice(-2000)}`);
    }
  }
}
console.log(pass ? verdictLine : verdictLine.replace("soak: PASS", "soak: FAIL"));
process.exit(pass ? 0 : 1);

/** With every soak user and channel gone, the server holds nothing: checked with `[stats]`. */
async function checkEmpty(privatePort: number): Promise<void> {
  const ctl = await ControlClient.connect(privatePort);
  try {
    const stats = await ctl.ok("[stats]");
    for (const expected of ["users=0", "online=0", "channels=1", "held=0", "dropped=0"]) {
      if (!stats.split(" ").includes(expected)) problems.add(`[stats] after the soak says ${stats}, expected ${expected}`);
    }
  } finally {
    ctl.close();
  }
}

/**
 * The server's RSS once it has had a moment, and how long that took: the lowest of samples taken until it
 * is back at its after-warm-up level `warm`, or for 30 s. An idle server frees its garbage on its own
 * schedule: the replay windows of the killed users and channels (up to --replay-bytes) are returned
 * some 5–10 s after the load stops, and until then RSS stays near its peak.
 */
async function settledRss(pid: number, warm: number): Promise<{ mb: number; afterMs: number }> {
  const start = Date.now();
  let mb = rssMb(pid);
  while (mb > warm && Date.now() - start < RSS_SETTLE_MS) {
    await Bun.sleep(250);
    mb = Math.min(mb, rssMb(pid));
  }
  return { mb, afterMs: Date.now() - start };
}

function rssLimit(warm: number): number {
  return Math.round(warm + Math.max(RSS_SLACK_MB, warm * RSS_SLACK_RATIO));
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024);
}

function sum(of: (backend: Backend) => number): number {
  return backends.reduce((total, backend) => total + of(backend), 0);
}

function n(value: number): string {
  return value.toLocaleString("en-US");
}

function positive(name: string, value: string | undefined): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1) fail(`--${name} must be a whole number ≥ 1, got ${JSON.stringify(value)}`);
  return parsed;
}

function whole(name: string, value: string | undefined): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) fail(`--${name} must be a whole number ≥ 0, got ${JSON.stringify(value)}`);
  return parsed;
}

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}
