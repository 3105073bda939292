// The soak's side of its browser workers: separate processes (each may hold thousands of WebSockets, up to
// the per-process open-file limit), a user always served by the same one, session reports routed back.

import type { Subprocess } from "bun";
import { resolve } from "node:path";
import { within } from "../../test/helpers.ts";
import type { Browsers } from "./backend.ts";
import type { Order, Report } from "./browsers.ts";
import type { SessionEnd } from "./users.ts";

const WORKER = resolve(import.meta.dir, "browsers.ts");

export class BrowserPool implements Browsers {
  #workers: Subprocess[] = [];
  #onEnd = new Map<number, (end: SessionEnd) => void>();
  #nextSession = 1;

  /** Starts `count` worker processes browsing `publicUrl`, and waits until each says it is ready. */
  static async start(publicUrl: string, count: number): Promise<BrowserPool> {
    const pool = new BrowserPool();
    const ready: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const { promise, resolve: isReady } = Promise.withResolvers<void>();
      ready.push(promise);
      pool.#workers.push(
        Bun.spawn([process.execPath, WORKER, publicUrl], {
          stdio: ["ignore", "inherit", "inherit"],
          serialization: "advanced",
          ipc: (report: Report) => (report.type === "ready" ? isReady() : pool.#ended(report)),
        }),
      );
    }
    try {
      await within(Promise.all(ready), "the browser workers to start", 15_000);
    } catch (error) {
      await pool.stop();
      throw error;
    }
    return pool;
  }

  /** Sessions opened and not yet reported ended. */
  get live(): number {
    return this.#onEnd.size;
  }

  open(user: number, token: string, onEnd: (end: SessionEnd) => void): number {
    const session = this.#nextSession++;
    this.#onEnd.set(session, onEnd);
    this.#order(user, { type: "open", session, token });
    return session;
  }

  close(session: number, user: number, afterKey: number): void {
    this.#order(user, { type: "close", session, afterKey });
  }

  /** Tells every worker to exit, and kills by PID any that has not within 5 s. */
  async stop(): Promise<void> {
    for (const worker of this.#workers) {
      if (worker.exitCode === null) worker.send({ type: "exit" } satisfies Order);
    }
    try {
      await within(Promise.all(this.#workers.map((w) => w.exited)), "the browser workers to exit", 5_000);
    } finally {
      for (const worker of this.#workers) worker.kill("SIGKILL");
    }
  }

  #order(user: number, order: Order): void {
    this.#workers[user % this.#workers.length]!.send(order);
  }

  #ended(report: Extract<Report, { type: "ended" }>): void {
    const onEnd = this.#onEnd.get(report.session);
    this.#onEnd.delete(report.session);
    onEnd?.({ code: report.code, opened: report.opened, keys: report.keys, strange: report.strange });
  }
}
