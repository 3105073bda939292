/**
 * The server's counters and gauges, plain numbers that call sites bump without asking whether anyone
 * reads them. `[stats]` reads them; later the admin endpoint renders them for Prometheus.
 */
export class Metrics {
  readonly startedAt = Date.now();
  /** Messages handed to browsers: whispers, shouts (once per online member), held messages at login. */
  delivered = 0;
  /** Held messages dropped because a user's queue was full. */
  dropped = 0;
  controlConnections = 0;
  listenersDisconnected = 0;
  /** Browsers closed with 4006 because they stopped reading. */
  slowConsumersDisconnected = 0;
  /** Messages sent again to v2 browsers that resumed from a position. */
  replayed = 0;
  /** `#gap` notices sent: positions the replay window no longer covered. */
  gaps = 0;

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
    };
  }
}

/** Adds up several nodes' counters, key by key. */
export function sumCounters(all: Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const counters of all) for (const [key, value] of Object.entries(counters)) total[key] = (total[key] ?? 0) + value;
  return total;
}
