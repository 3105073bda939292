// The attack suite's instruments: what users feel while a hostile or careless peer pushes, measured
// from outside the server — its RSS from /proc, and the latency a well-behaved backend and browser see.

import { readFileSync } from "node:fs";
import { Browser, ControlClient, createUsers, loggedIn, newUser, within, type User } from "../helpers.ts";
import { MAIN, spawnServer, type Spawned } from "../process.ts";

/**
 * Attack sizes: the short form by default (CI), the sizes of the report with WEBTALK_ATTACK=full.
 * Each test picks `scale(short, full)`.
 */
export const FULL = process.env.WEBTALK_ATTACK === "full";
export function scale(short: number, full: number): number {
  return FULL ? full : short;
}

export const MB = 1024 * 1024;

/** Starts webtalk as its own process (so its RSS is its own) on loopback, ports chosen by the kernel. */
export function spawnTarget(flags: string[] = [], env: Record<string, string> = {}): Promise<Spawned> {
  return spawnServer(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", ...flags], {
    env: { ...(process.env as Record<string, string>), ...env },
  });
}

/** Resident memory of a process, in bytes, from /proc/PID/status (0 once it has exited). */
export function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; `peak` is the highest seen. */
export class RssSampler {
  peak = 0;
  readonly baseline: number;
  #timer: ReturnType<typeof setInterval>;

  constructor(
    readonly pid: number,
    everyMs = 50,
  ) {
    this.baseline = rssOf(pid);
    this.peak = this.baseline;
    this.#timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    const now = rssOf(this.pid);
    this.peak = Math.max(this.peak, now);
    return now;
  }

  /** Growth of the peak over the baseline taken at construction. */
  get growth(): number {
    return this.peak - this.baseline;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
  /** Probes sent that never got an answer by the time the canary stopped (counted as `max = Infinity`). */
  unanswered: number;
}

/** The p-th percentile (0–100) of ms values; NaN for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summarise(samples: number[], unanswered: number): Latency {
  return {
    count: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: unanswered > 0 ? Infinity : Math.max(0, ...samples),
    unanswered,
  };
}

/**
 * A well-behaved backend on its own control connection: one `[ping]` at a time, every `everyMs`, timing
 * each round trip. A ping still unanswered when the canary stops counts in `unanswered`.
 */
export async function canaryBackend(port: number, options: { everyMs?: number; secret?: string } = {}) {
  const ctl = await ControlClient.connect(port);
  if (options.secret !== undefined) await ctl.ok(`[auth] ${options.secret}`);
  const samples: number[] = [];
  let running = true;
  let pending = 0;
  const loop = (async () => {
    while (running) {
      const sent = performance.now();
      pending = 1;
      const reply = await ctl.call("[ping]").catch(() => "<closed>");
      pending = 0;
      if (!reply.startsWith("[ok]")) throw new Error(`canary [ping] answered ${reply}`);
      samples.push(performance.now() - sent);
      await Bun.sleep(options.everyMs ?? 50);
    }
  })();
  return {
    ctl,
    samples,
    /** Stops probing (waiting at most `graceMs` for the probe in flight) and reports the latencies. */
    async stop(graceMs = 10_000): Promise<Latency> {
      running = false;
      await within(loop, "the canary backend's last ping", graceMs).catch(() => undefined);
      ctl.close();
      return summarise(samples, pending);
    },
  };
}

/**
 * A well-behaved browser: logged in as its own user; a canary backend connection whispers it a
 * timestamp every `everyMs` and the browser times each arrival. A whisper that never arrives by the
 * time the canary stops counts in `unanswered`.
 */
export async function canaryBrowser(target: Pick<Spawned, "publicUrl" | "privatePort">, options: { everyMs?: number; secret?: string } = {}) {
  const ctl = await ControlClient.connect(target.privatePort);
  if (options.secret !== undefined) await ctl.ok(`[auth] ${options.secret}`);
  const [browser, user] = await loggedIn({ publicUrl: target.publicUrl }, ctl);
  const samples: number[] = [];
  let sent = 0;
  let running = true;
  const receive = (async () => {
    for (;;) {
      const text = await browser.messages.next("a canary whisper", 60_000).catch(() => undefined);
      if (text === undefined || text === "stop") return;
      samples.push(performance.now() - Number(text.slice(7)));
    }
  })();
  const loop = (async () => {
    while (running) {
      const reply = await ctl.call(`[whisper] ${user.id}!canary:${performance.now()}`).catch(() => "<closed>");
      if (reply !== "[ok] message sent") throw new Error(`canary whisper answered ${reply}`);
      sent++;
      await Bun.sleep(options.everyMs ?? 50);
    }
  })();
  return {
    browser,
    user,
    samples,
    async stop(graceMs = 10_000): Promise<Latency> {
      running = false;
      await within(loop, "the canary whisperer's last whisper", graceMs).catch(() => undefined);
      await ctl.ok(`[whisper] ${user.id}!stop`).catch(() => undefined);
      await within(receive, "the canary browser's last whisper", graceMs).catch(() => undefined);
      browser.close();
      ctl.close();
      return summarise(samples, sent - samples.length);
    },
  };
}

/** One line for the test log: what the attack cost, as users feel it. */
export function report(name: string, figures: Record<string, number | string | Latency>): void {
  const text = Object.entries(figures)
    .map(([key, value]) => {
      if (typeof value === "number") return `${key}=${Number.isInteger(value) ? value : value.toFixed(1)}`;
      if (typeof value === "string") return `${key}=${value}`;
      return `${key}=p50 ${value.p50.toFixed(1)} / p99 ${value.p99.toFixed(1)} / max ${value.max.toFixed(1)} ms (${value.count}, ${value.unanswered} unanswered)`;
    })
    .join(" · ");
  console.log(`[attack] ${name}: ${text}`);
}

export { Browser, ControlClient, createUsers, newUser, within, type Spawned, type User };

/** The server's epoch, as any page learns it: from a v2 login of its own, then closed. */
export async function learnEpoch(publicUrl: string, token: string): Promise<string> {
  const page = await Browser.open(publicUrl, "webtalk.v2");
  page.send(token);
  const epoch = (await page.messages.next("the epoch")).slice("#epoch ".length);
  page.close();
  await within(page.closed, "the first page to close");
  return epoch;
}
