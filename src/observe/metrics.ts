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
}
