// The many-sources soak (`bun run soak -- --sources N`): whispers to N distinct offline users in turn,
// for the duration, so every whisper is held and enters its user's replay window and both byte caps
// evict all the time. The server's RSS is sampled four times a second (the first third is warm-up) and
// must stay flat: the last third's median no higher than the second third's peak. RSS saws between garbage
// collections (some 400–880 MB at ~35,000 whispers/s of 1,000 bytes), so one third's median against
// another's is a collection's luck (both are printed); a leak lifts the whole last third above the peak.

import { readFileSync } from "node:fs";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { ControlClient, createUsers } from "../../test/helpers.ts";
import { MAIN, spawnServer, type Spawned } from "../../test/process.ts";

export interface SourcesOptions {
  /** HOST:PORT of an existing server's control port; without it a server is started (default flags). */
  private: string | undefined;
  /** The existing server's PID, for its RSS. */
  pid: number | undefined;
  sources: number;
  durationS: number;
  /** Bytes of each whisper. */
  bytes: number;
  log: (text: string) => void;
}


/** Whispers in flight per write: enough to keep the server busy, bounded so replies stay small. */
const BATCH = 500;
/** Many samples, so a third's median is not one garbage collection's luck. */
const SAMPLE_MS = 250;

/** Runs the soak, prints its verdict line on stdout and returns whether it passed. */
export async function soakSources(options: SourcesOptions): Promise<boolean> {
  let server: Spawned | undefined;
  let line: string;
  let pass = false;
  try {
    if (options.private === undefined) server = await spawnServer([process.execPath, MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0"]);
    const privatePort = server?.privatePort ?? Number(options.private!.split(":").at(-1));
    ({ pass, line } = await whisperAll(privatePort, server?.proc.pid ?? options.pid, options));
  } catch (error) {
    line = `soak: FAIL ${options.durationS}s ${options.sources} sources: ${(error as Error).message}`;
  } finally {
    const code = await server?.stop();
    if (code !== undefined && code !== 0) {
      pass = false;
      options.log(`the server exited with ${code}; its output ends with:\n${server!.output().slice(-2000)}`);
    }
  }
  console.log(pass ? line : line.replace("soak: PASS", "soak: FAIL"));
  return pass;
}

async function whisperAll(privatePort: number, pid: number | undefined, options: SourcesOptions) {
  const { sources, durationS, bytes, log } = options;
  const ctl = await ControlClient.connect(privatePort);
  try {
    const users = await createUsers(ctl, sources);
    log(`${sources} users created; whispering ${bytes}-byte messages to each in turn for ${durationS}s`);
    const samples: number[] = [];
    const body = "s".repeat(bytes);
    const started = Date.now();
    const end = started + durationS * 1000;
    let nextSample = started;
    let whispers = 0;
    let next = 0;
    while (Date.now() < end) {
      const batch = Array.from({ length: BATCH }, () => `[whisper] ${users[next++ % users.length]}!${whispers}:${body}`);
      ctl.write(encodeFrames(batch));
      for (const reply of await ctl.replies.take(BATCH, "whisper replies", 30_000)) {
        if (!reply.startsWith("[ok]")) throw new Error(`a whisper answered ${reply}`);
      }
      whispers += BATCH;
      if (pid !== undefined && Date.now() >= nextSample) {
        samples.push(rssMb(pid));
        nextSample += SAMPLE_MS;
        if (samples.length % 40 === 0) log(`${(samples.length * SAMPLE_MS) / 1000}s: ${whispers} whispers, rss ${samples.at(-1)} MB`);
      }
    }
    const stats = await ctl.ok("[stats]");
    log(`[stats] ${stats}`);
    log(`rss MB every ${SAMPLE_MS} ms: ${samples.join(" ")}`);
    const third = Math.floor(samples.length / 3);
    const second = median(samples.slice(third, 2 * third));
    const last = median(samples.slice(2 * third));
    const secondPeak = Math.max(...samples.slice(third, 2 * third));
    const flat = pid === undefined || (third > 0 && last <= secondPeak);
    const memory =
      pid === undefined
        ? "rss not measured (no --pid)"
        : `rss median ${second} MB in the second third → ${last} MB in the last (×${(last / second).toFixed(2)}; ` +
          `limit: the second third's peak, ${secondPeak} MB), peak ${Math.max(...samples)} MB`;
    const line = `soak: ${flat ? "PASS" : "FAIL"} ${durationS}s ${sources} sources: ${whispers.toLocaleString("en-US")} whispers of ${bytes} bytes; ${memory}`;
    return { pass: flat, line };
  } finally {
    ctl.close();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024);
}
