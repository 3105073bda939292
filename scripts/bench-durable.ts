// `npm run bench:durable`: what --data costs. In one run, against real server processes: control
// commands per second and whisper/shout deliveries per second in memory mode and in SQLite mode
// (--data-sync full and normal), then the restart time with a large data file.
// Usage: bun scripts/bench-durable.ts [--commands 10000] [--browsers 200] [--users 100000] [--channels 10000] [--runs 3]
// Each figure is the median of --runs runs. Figures with sync full are bounded by the disk's fsync.

import type { Subprocess } from "bun";
import { Database } from "bun:sqlite";
import { cpus, tmpdir } from "node:os";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { encodeFrames, FrameDecoder } from "../src/protocol/frame.ts";
import { openDataFile } from "../src/state/sqlite-file.ts";
import { openSqliteState, SqliteState } from "../src/state/sqlite.ts";

const MAIN = resolve(import.meta.dir, "../src/main.ts");
const option = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const COMMANDS = option("commands", 10_000);
const BROWSERS = option("browsers", 200);
const USERS = option("users", 100_000);
const CHANNELS = option("channels", 10_000);
const RUNS = option("runs", 3);
const CONNECTIONS = 4;
const WINDOW = 64; // frames in flight per connection
const TIMEOUT_MS = 120_000;

const dir = mkdtempSync(join(tmpdir(), "webtalk-bench-durable-"));
const running = new Set<Subprocess>();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

type Mode = { name: string; flags: string[] };
const modes: Mode[] = [
  { name: "memory", flags: [] },
  { name: "sqlite, sync full", flags: ["--data", join(dir, "full.db"), "--data-sync", "full"] },
  { name: "sqlite, sync normal", flags: ["--data", join(dir, "normal.db"), "--data-sync", "normal"] },
];

await main();
process.exit(0);

async function main(): Promise<void> {
  console.log(`# webtalk --data benchmark\n`);
  console.log(`${cpus()[0]?.model ?? "?"} × ${cpus().length}, ${process.platform} ${process.arch}, Bun ${Bun.version}, SQLite ${sqliteVersion()}, data in ${tmpdir()}\n`);

  const throughput: Record<string, string[]> = {};
  const row = (label: string, value: string) => (throughput[label] ??= []).push(value);
  for (const mode of modes) {
    const server = await start(mode.flags);
    const ctl = await Control.connect(server.port);
    const users = (await ctl.pipeline(Array.from({ length: 1000 }, () => "[newuser]"))).map((r) => r.slice(5).split("!")[0]!);
    const channels = (await ctl.pipeline(Array.from({ length: 100 }, () => "[newchannel]"))).map((r) => r.slice(5));
    const pick = <T>(items: T[], i: number) => items[(i * 7919) % items.length]!;
    const loads: [string, (i: number) => string][] = [
      ["[newuser]", () => "[newuser]"],
      // Distinct pairs, so every join adds a membership.
    ["[join]", (i) => `[join] ${channels[i % channels.length]}!${users[Math.floor(i / channels.length) % users.length]}`],
      ["[store]", (i) => `[store] key-${i % 1000}!value-${i}-${"v".repeat(24)}`],
      ["[retrieve]", (i) => `[retrieve] key-${i % 1000}`],
      ["[whisper] to an offline user (held)", (i) => `[whisper] ${pick(users, i)}!held-${i}-${"m".repeat(24)}`],
    ];
    for (const [label, make] of loads) {
      const rates: number[] = [];
      for (let run = 0; run < RUNS; run++) rates.push(await load(server.port, (i) => make(run * COMMANDS + i), COMMANDS));
      row(`${label}, commands/s`, rate(median(rates)));
    }
    const [whisper, shout] = await deliveries(server, ctl);
    row("whisper to an online user, deliveries/s", rate(whisper));
    row(`shout to a channel of ${BROWSERS}, deliveries/s`, rate(shout));
    ctl.close();
    await stop(server, "SIGTERM");
  }
  console.log(`## Throughput (median of ${RUNS} runs of ${COMMANDS} commands, ${CONNECTIONS} connections × ${WINDOW} in flight; ${BROWSERS} browsers)\n`);
  console.log(`| | ${modes.map((m) => m.name).join(" | ")} |\n|---|${modes.map(() => "---:").join("|")}|`);
  for (const [label, values] of Object.entries(throughput)) console.log(`| ${label} | ${values.join(" | ")} |`);

  // Restart: a file with USERS users and CHANNELS channels (each user in channel 1 and one other),
  // 1% of users with 10 held messages, 1000 stored keys.
  const big = join(dir, "big.db");
  const built = performance.now();
  const state = openSqliteState(big, { sync: "normal" });
  for (let c = 0; c < CHANNELS; c++) state.createChannel();
  for (let u = 1; u <= USERS; u++) {
    const id = state.createUser(`salt-${u}-xxxxxxxxxxxxxxxx`);
    state.join(2 + (u % CHANNELS), id);
    if (u % 100 === 0) for (let m = 0; m < 10; m++) state.hold(id, `held ${m} for ${id}`, 1000);
  }
  for (let k = 0; k < 1000; k++) state.store(`key-${k}`, "v".repeat(100));
  state.close();
  const size = (statSync(big).size / 1048576).toFixed(1);
  console.log(`\n## Restart with ${USERS} users and ${CHANNELS} channels (${size} MiB file, built in ${seconds(performance.now() - built)})\n`);

  const timings: Record<string, number[]> = {};
  const time = (label: string, ms: number) => (timings[label] ??= []).push(ms);
  for (let run = 0; run < RUNS; run++) {
    let t = performance.now();
    new SqliteState(openDataFile(big, { sync: "full", check: false })).close();
    time("open the file in-process, without the page check", performance.now() - t);
    t = performance.now();
    openSqliteState(big, { sync: "full" }).close();
    time("open the file in-process, with the page check (the default)", performance.now() - t);
    t = performance.now();
    await stop(await start([]), "SIGTERM");
    time("process start to listening, memory mode (baseline)", performance.now() - t);
    t = performance.now();
    let server = await start(["--data", big]);
    time("process start to listening, --data", performance.now() - t);
    await login(server, 100 * (run + 1)); // a user with held messages, delivered at login
    time("process start to first browser logged in with its held messages, --data", performance.now() - t);
    // A crash with a WAL that has not been checkpointed: recovery at the next open replays it.
    const ctl = await Control.connect(server.port);
    await ctl.pipeline(Array.from({ length: 5000 }, (_, i) => `[store] crash-${i}!${"x".repeat(200)}`));
    ctl.close();
    await stop(server, "SIGKILL");
    t = performance.now();
    server = await start(["--data", big]);
    time("process start to listening after a SIGKILL (WAL recovery), --data", performance.now() - t);
    await stop(server, "SIGTERM");
  }
  console.log(`| step (median of ${RUNS}) | ms |\n|---|---:|`);
  for (const [label, values] of Object.entries(timings)) console.log(`| ${label} | ${median(values).toFixed(0)} |`);
}

// ——— helpers ———

interface Server {
  proc: Subprocess;
  port: number;
  url: string;
}

/** Spawns a server and resolves the moment it logs its private address (no polling delay). */
async function start(flags: string[]): Promise<Server> {
  const proc = Bun.spawn(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--log-level", "info", ...flags], {
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of bounded(proc.stdout, "the server's startup log")) {
    text += decoder.decode(chunk, { stream: true });
    const port = /private\s+tcp:\/\/\S+:(\d+)/.exec(text);
    const url = /public\s+(ws:\/\/\S+)/.exec(text);
    if (port && url) return { proc, port: Number(port[1]), url: url[1]! };
  }
  throw new Error(`server exited: ${text}${await new Response(proc.stderr).text()}`);
}

async function stop(server: Server, signal: NodeJS.Signals): Promise<void> {
  server.proc.kill(signal);
  await within(server.proc.exited, "the server to exit");
  running.delete(server.proc);
}

/** A lean control client: pipelined frames, replies counted, no per-reply timers. */
class Control {
  #socket!: Awaited<ReturnType<typeof Bun.connect<undefined>>>;
  #decoder = new FrameDecoder();
  #text = new TextDecoder();
  #replies: string[] = [];
  #want = 0;
  #done: (() => void) | undefined;

  static async connect(port: number): Promise<Control> {
    const client = new Control();
    client.#socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_s, chunk) => {
          for (const frame of client.#decoder.push(chunk)) {
            if (frame.kind === "payload") client.#replies.push(client.#text.decode(frame.bytes));
          }
          if (client.#replies.length >= client.#want) client.#done?.();
        },
      },
    });
    return client;
  }

  /** Sends the payloads WINDOW at a time and returns every reply, failing on an `[error]`. */
  async pipeline(payloads: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < payloads.length; i += WINDOW) {
      const batch = payloads.slice(i, i + WINDOW);
      this.#replies = [];
      this.#want = batch.length;
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#done = resolve;
      this.#socket.write(encodeFrames(batch));
      await within(promise, "replies");
      for (const reply of this.#replies) if (!reply.startsWith("[ok]")) throw new Error(`${batch[0]} answered ${reply}`);
      out.push(...this.#replies);
    }
    return out;
  }

  close(): void {
    this.#socket.end();
  }
}

/** Runs `count` commands over CONNECTIONS connections and returns commands per second. */
async function load(port: number, make: (i: number) => string, count: number): Promise<number> {
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => Control.connect(port)));
  const share = Math.ceil(count / CONNECTIONS);
  const t = performance.now();
  await Promise.all(clients.map((c, k) => c.pipeline(Array.from({ length: share }, (_, i) => make(k * share + i)))));
  const elapsed = performance.now() - t;
  for (const c of clients) c.close();
  return (share * CONNECTIONS * 1000) / elapsed;
}

/** Logs BROWSERS browsers in, then measures whispers to them and shouts to a channel of them. */
async function deliveries(server: Server, ctl: Control): Promise<[number, number]> {
  const ids = (await ctl.pipeline(Array.from({ length: BROWSERS }, () => "[newuser]"))).map((r) => r.slice(5));
  const channel = (await ctl.pipeline(["[newchannel]"]))[0]!.slice(5);
  await ctl.pipeline(ids.map((token) => `[join] ${channel}!${token.split("!")[0]}`));
  let received = 0;
  let want = Infinity;
  let all: (() => void) | undefined;
  await ctl.pipeline(ids.map((token) => `[whisper] ${token.split("!")[0]}!ready`));
  const sockets = await Promise.all(
    ids.map(async (token) => {
      const ws = await open(server.url, token);
      ws.onmessage = () => {
        if (++received >= want) all?.();
      };
      return ws;
    }),
  );
  const measure = async (payloads: string[], expected: number) => {
    received = 0;
    want = expected;
    const { promise, resolve } = Promise.withResolvers<void>();
    all = resolve;
    const t = performance.now();
    await ctl.pipeline(payloads);
    await within(promise, "deliveries");
    return (expected * 1000) / (performance.now() - t);
  };
  const whispers = Array.from({ length: COMMANDS }, (_, i) => `[whisper] ${ids[i % BROWSERS]!.split("!")[0]}!whisper ${i}`);
  const shouts = Array.from({ length: Math.ceil(COMMANDS / 10) }, (_, i) => `[shout] ${channel}!shout ${i}`);
  const whisperRates: number[] = [];
  const shoutRates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    whisperRates.push(await measure(whispers, COMMANDS));
    shoutRates.push(await measure(shouts, shouts.length * BROWSERS));
  }
  for (const ws of sockets) ws.close();
  return [median(whisperRates), median(shoutRates)];
}

/** Opens a browser and resolves once the server has admitted it (the held "ready" arrives). */
async function open(url: string, token: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  ws.onopen = () => ws.send(token);
  ws.onmessage = (e) => e.data === "ready" && resolve();
  ws.onerror = () => reject(new Error("browser failed"));
  await within(promise, "a browser login");
  return ws;
}

/** Logs in user `id` of the big file (its salt is known) and waits for its 10 held messages. */
async function login(server: Server, id: number): Promise<void> {
  const ws = new WebSocket(server.url);
  let count = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  ws.onopen = () => ws.send(`${id}!salt-${id}-xxxxxxxxxxxxxxxx`);
  ws.onmessage = () => ++count === 10 && resolve();
  await within(promise, "held messages at login");
  ws.close();
}

async function* bounded(stream: ReadableStream<Uint8Array>, what: string) {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await within(reader.read(), what);
    if (done) return;
    yield value;
  }
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function rate(perSecond: number): string {
  return Math.round(perSecond).toLocaleString("en-US");
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function sqliteVersion(): string {
  const db = new Database(":memory:");
  const version = (db.query("SELECT sqlite_version() AS v").get() as { v: string }).v;
  db.close();
  return version;
}
