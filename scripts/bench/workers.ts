// The orchestrator's side of the load-generator processes: spawn, split browsers across them, ask.

import type { Subprocess } from "bun";
import { resolve } from "node:path";
import type { BrowserStats } from "./browsers.ts";
import { Histogram } from "./histogram.ts";
import { pin, track, untrack } from "./processes.ts";
import { within } from "./within.ts";

export type WorkerRequest =
  | { op: "connect"; id: number; url: string; tokens: string[]; concurrency: number; protocol?: string }
  | { op: "probed"; id: number; k: number }
  | { op: "expect"; id: number; first: number }
  | { op: "collect"; id: number }
  | { op: "close"; id: number }
  | { op: "exit"; id: number };

export type WorkerReply = { id: number } & Record<string, unknown>;

interface Progress {
  minNext: number;
  shouts: number;
  whispers: number;
  closed: number;
}

interface Worker {
  proc: Subprocess;
  waiting: Map<number, (reply: WorkerReply) => void>;
  progress: Progress;
}

const WORKER = resolve(import.meta.dir, "worker.ts");
const REQUEST_MS = 60_000;

/** A set of worker processes holding browsers, pinned to the load generator's cores. */
export class Workers {
  readonly #workers: Worker[] = [];
  #nextId = 1;
  #listeners = new Set<() => void>();

  static async start(count: number, cores: string | undefined): Promise<Workers> {
    const workers = new Workers();
    const ready: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const { promise, resolve: started } = Promise.withResolvers<WorkerReply>();
      const worker: Worker = {
        proc: undefined as never,
        waiting: new Map([[0, started]]),
        progress: { minNext: 0, shouts: 0, whispers: 0, closed: 0 },
      };
      worker.proc = Bun.spawn([process.execPath, WORKER], {
        stdio: ["ignore", "inherit", "inherit"],
        ipc: (message: WorkerReply) => workers.#onMessage(worker, message),
      });
      track(worker.proc);
      workers.#workers.push(worker);
      ready.push(within(promise, "a worker to start", 15_000));
    }
    await Promise.all(ready);
    if (cores) for (const w of workers.#workers) await pin(w.proc.pid, cores);
    return workers;
  }

  get pids(): number[] {
    return this.#workers.map((w) => w.proc.pid);
  }

  /** Opens one browser per token, spread evenly over the workers. */
  async connect(
    url: string,
    tokens: readonly string[],
    concurrency: number,
    protocol?: string,
  ): Promise<{ opened: number; failed: number }> {
    const n = this.#workers.length;
    const replies = await Promise.all(
      this.#workers.map((w, i) =>
        this.#ask(w, { op: "connect", url, tokens: tokens.filter((_, j) => j % n === i), concurrency, protocol }),
      ),
    );
    return {
      opened: replies.reduce((s, r) => s + (r.opened as number), 0),
      failed: replies.reduce((s, r) => s + (r.failed as number), 0),
    };
  }

  /** How many browsers have seen probe k. */
  async probed(k: number): Promise<number> {
    const replies = await Promise.all(this.#workers.map((w) => this.#ask(w, { op: "probed", k })));
    return replies.reduce((s, r) => s + (r.count as number), 0);
  }

  /** Starts a counting phase: shouts from `first` on; progress reports begin. */
  async expect(first: number): Promise<void> {
    for (const w of this.#workers) w.progress = { minNext: first, shouts: 0, whispers: 0, closed: 0 };
    await Promise.all(this.#workers.map((w) => this.#ask(w, { op: "expect", first })));
  }

  /** The latest progress, summed (minNext is the minimum). */
  progress(): Progress {
    const out: Progress = { minNext: Number.POSITIVE_INFINITY, shouts: 0, whispers: 0, closed: 0 };
    for (const { progress: p } of this.#workers) {
      out.minNext = Math.min(out.minNext, p.minNext);
      out.shouts += p.shouts;
      out.whispers += p.whispers;
      out.closed += p.closed;
    }
    return out;
  }

  /** Resolves at the next progress report from any worker, or after `ms`. */
  nextProgress(ms: number): Promise<void> {
    return new Promise((done) => {
      const timer = setTimeout(finish, ms);
      const listeners = this.#listeners;
      listeners.add(finish);
      function finish() {
        clearTimeout(timer);
        listeners.delete(finish);
        done();
      }
    });
  }

  /** Ends the phase and gathers every worker's counts and latencies. */
  async collect(): Promise<{ stats: BrowserStats; latency: Histogram }> {
    const replies = await Promise.all(this.#workers.map((w) => this.#ask(w, { op: "collect" })));
    const latency = new Histogram();
    const stats: BrowserStats = { shouts: 0, whispers: 0, others: 0, disorder: 0, gaps: 0, closed: 0, closeCodes: {} };
    for (const reply of replies) {
      const s = reply.stats as BrowserStats;
      stats.shouts += s.shouts;
      stats.whispers += s.whispers;
      stats.others += s.others;
      stats.disorder += s.disorder;
      stats.gaps += s.gaps;
      stats.closed += s.closed;
      for (const [code, n] of Object.entries(s.closeCodes)) stats.closeCodes[code] = (stats.closeCodes[code] ?? 0) + n;
      latency.merge(reply.latency as { counts: number[]; max: number });
    }
    return { stats, latency };
  }

  async closeBrowsers(): Promise<void> {
    await Promise.all(this.#workers.map((w) => this.#ask(w, { op: "close" })));
  }

  /** Ends every worker: asked first, then killed by PID whatever they answered. */
  async stop(): Promise<void> {
    for (const w of this.#workers) {
      try {
        w.proc.send({ op: "exit", id: 0 });
      } catch {
        // already gone
      }
    }
    await Promise.all(this.#workers.map((w) => within(w.proc.exited, "a worker to exit", 3_000).catch(() => undefined)));
    for (const w of this.#workers) {
      w.proc.kill("SIGKILL");
      untrack(w.proc);
    }
  }

  #ask(worker: Worker, request: DistributiveOmit<WorkerRequest, "id">): Promise<WorkerReply> {
    const id = this.#nextId++;
    const { promise, resolve: answered } = Promise.withResolvers<WorkerReply>();
    worker.waiting.set(id, answered);
    worker.proc.send({ ...request, id });
    return within(promise, `worker reply to ${request.op}`, REQUEST_MS).finally(() => worker.waiting.delete(id));
  }

  #onMessage(worker: Worker, message: WorkerReply): void {
    if (message.id === -1) {
      worker.progress = {
        minNext: message.progress as number,
        shouts: message.shouts as number,
        whispers: message.whispers as number,
        closed: message.closed as number,
      };
      for (const listener of [...this.#listeners]) listener();
      return;
    }
    worker.waiting.get(message.id)?.(message);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
