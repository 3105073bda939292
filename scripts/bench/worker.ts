// A load-generator process: holds a share of the browsers and answers the orchestrator over IPC.
// Spawned by workers.ts; never run by hand.

import { BrowserPool } from "./browsers.ts";
import type { WorkerReply, WorkerRequest } from "./workers.ts";

const pool = new BrowserPool();
/** While a phase runs, progress goes to the orchestrator this often, for its flow control. */
const PROGRESS_MS = 5;
let progress: Timer | undefined;

const send = (message: WorkerReply): void => void process.send?.(message);

process.on("message", async (request: WorkerRequest) => {
  switch (request.op) {
    case "connect": {
      const result = await pool.connect(request.url, request.tokens, request.concurrency, request.protocol);
      return send({ id: request.id, ...result });
    }
    case "probed":
      return send({ id: request.id, count: pool.probed(request.k), size: pool.size });
    case "expect":
      pool.expect(request.first);
      clearInterval(progress);
      progress = setInterval(() => send({ id: -1, progress: finite(pool.minNext()), ...counts() }), PROGRESS_MS);
      return send({ id: request.id });
    case "collect":
      clearInterval(progress);
      progress = undefined;
      return send({ id: request.id, stats: pool.stats, latency: pool.latency.toJSON(), minNext: finite(pool.minNext()) });
    case "close":
      clearInterval(progress);
      pool.closeAll();
      return send({ id: request.id });
    case "exit":
      process.exit(0);
  }
});

function counts() {
  return { shouts: pool.stats.shouts, whispers: pool.stats.whispers, closed: pool.stats.closed };
}

// The orchestrator going away (even killed) must not leave this process behind.
process.on("disconnect", () => process.exit(0));
send({ id: 0 });

// With no browser open the minimum is infinite, which does not survive IPC as a number.
function finite(n: number): number {
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
}
