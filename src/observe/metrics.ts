import { CloseCode } from "../protocol/codes.ts";
import { Histogram, HistogramsBy } from "./histogram.ts";

/** How a browser's login ended: accepted, refused (any reason but the two below), second under `--duplicate reject`, or never sent. */
export type LoginResult = "ok" | "failed" | "duplicate" | "timeout";

export type CommandResult = "ok" | "error";

/**
 * The server's counters and gauges, plain numbers that call sites bump without asking whether anyone
 * reads them. `[stats]` reads them; the admin endpoint renders them for Prometheus (observe/prometheus.ts).
 */
export class Metrics {
  readonly startedAt = Date.now();
  /** Messages handed to browsers: whispers, shouts (once per online member), held messages at login. */
  delivered = 0;
  /** Whispers held because the user had no browser connected. */
  held = 0;
  /** Held messages dropped because a user's queue was full. */
  dropped = 0;
  controlConnections = 0;
  listenersDisconnected = 0;
  /** Browsers closed with 4006 because they stopped reading while messages piled up for them. */
  slowConsumersDisconnected = 0;
  /** Browsers closed with 1008 because they sent more messages per second than --max-message-rate. */
  tooFastDisconnected = 0;
  /** Messages sent again to v2 browsers that resumed from a position. */
  replayed = 0;
  /** `#gap` notices sent: positions the replay window no longer covered. */
  gaps = 0;
  /** Messages this node received from the cluster bus: a node that hosts nothing for a message should not see it. */
  busReceived = 0;
  /** Browsers logged in here now (a gauge): more than the users online when --sessions lets a user have several. */
  sessions = 0;
  readonly logins: Record<LoginResult, number> = { ok: 0, failed: 0, duplicate: 0, timeout: 0 };
  /** Control commands run, by command name and result. */
  readonly commands = new CommandCounter();

  // Latencies and closes (issue 16, ops): their own block, rendered by prometheus.ts's latencyFamilies.
  /** Seconds from a control command parsed to its reply made, by command name ("unknown" for the rest). */
  readonly commandSeconds = new HistogramsBy();
  /** Seconds of each write transaction on the --data file: with --data-sync full it ends in an fsync. */
  readonly dataCommitSeconds = new Histogram();
  /** Seconds from the node that took a whisper or shout to this node handing it to its browsers (cluster only). */
  readonly clusterDeliveryLagSeconds = new Histogram();
  /** Browser connections closed, by WebSocket close code (either side's), a fixed set of labels. */
  readonly browserCloses = new CloseCounter();

  /** The node-level counters `[stats]` adds up across a cluster, under their `[stats]` names. */
  counters(listeners: number): Record<string, number> {
    return {
      delivered: this.delivered,
      dropped: this.dropped,
      control_connections: this.controlConnections,
      listeners,
      slow_consumers: this.slowConsumersDisconnected,
      replayed: this.replayed,
      gaps: this.gaps,
      sessions: this.sessions,
    };
  }
}

/** Adds up several nodes' counters, key by key. */
export function sumCounters(all: Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const counters of all) for (const [key, value] of Object.entries(counters)) total[key] = (total[key] ?? 0) + value;
  return total;
}

/**
 * A counter split by label values. Callers keep the values to a small known set (unknown command
 * names are counted as "unknown"): every distinct combination is a time series in Prometheus.
 */
/**
 * Commands run, by name and result: one map lookup and no allocation per command, since it is counted
 * on the control path's hot loop.
 */
export class CommandCounter {
  readonly #byName = new Map<string, Record<CommandResult, number>>();

  add(command: string, result: CommandResult): void {
    let counts = this.#byName.get(command);
    if (!counts) this.#byName.set(command, (counts = { ok: 0, error: 0 }));
    counts[result]++;
  }

  get(command: string, result: CommandResult): number {
    return this.#byName.get(command)?.[result] ?? 0;
  }

  /** Every combination counted so far. */
  *entries(): IterableIterator<{ labels: [command: string, result: CommandResult]; value: number }> {
    for (const [command, counts] of this.#byName) {
      for (const result of ["ok", "error"] as const) {
        if (counts[result] > 0) yield { labels: [command, result], value: counts[result] };
      }
    }
  }
}


/** Close codes counted under their own label: webtalk's table (codes.ts) and the browser's usual ones. */
export const COUNTED_CLOSE_CODES: readonly number[] = [
  ...new Set([1000, 1001, 1005, 1006, ...Object.values(CloseCode).map((c) => c.code)]),
].sort((a, b) => a - b);

/** Closes by code: one array slot per known code, and "other" for any code outside the set. */
export class CloseCounter {
  readonly #counts = new Float64Array(COUNTED_CLOSE_CODES.length + 1);

  add(code: number): void {
    const i = COUNTED_CLOSE_CODES.indexOf(code);
    this.#counts[i === -1 ? COUNTED_CLOSE_CODES.length : i]!++;
  }

  /** Every label with its count, zeros included, so a dashboard's series exist from the first scrape. */
  entries(): [code: string, count: number][] {
    return [...COUNTED_CLOSE_CODES.map((code, i): [string, number] => [String(code), this.#counts[i]!]), ["other", this.#counts[COUNTED_CLOSE_CODES.length]!]];
  }
}
