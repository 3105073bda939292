/**
 * What the Redis state needs from its connection, whether to one Redis (`RedisLink`, Bun's client) or to a
 * Redis Cluster (`RedisClusterLink`, ioredis). Guarantees every implementation keeps:
 * - commands and scripts fail fast while Redis (or the shard of their keys) is away, as BackendUnavailable:
 *   never queued, never waiting past the timeout;
 * - scripts run by SHA1 only, in call order with every other command on the same shard;
 * - subscriptions are made again after every reconnect (what was published meanwhile is lost).
 */
export interface RedisConnection {
  /** Connects; throws BackendUnavailable when Redis cannot be reached at startup. */
  open(): Promise<void>;
  /** Calls `listener` each time the link is connected again after a loss: what Redis holds may have changed. */
  onReconnect(listener: () => void): void;
  readonly healthy: boolean;
  /** Whether Redis refused a write for want of memory and none has gone through since. */
  readonly full: boolean;
  /** While `full`: a small write to `key` (expiring at once) tells whether Redis has room again. */
  probeRoom(key: string): Promise<void>;
  call(command: string, args: (string | number)[]): Promise<unknown>;
  /** The same command on every master (a single Redis: on it), e.g. to read each one's configuration. */
  everyMaster(command: string, args: (string | number)[]): Promise<unknown[]>;
  /** Runs a Lua script by its SHA1; on a cluster every key must hash to one slot. */
  script(lua: string, keys: string[], args: (string | number)[]): Promise<unknown>;
  /** Every key matching `pattern` (SCAN's MATCH), in batches of about `count`; on a cluster, every master's. */
  scan(pattern: string, count: number): AsyncIterable<string[]>;
  /** Unlinks the keys (on a cluster, one call per slot among them); answers how many existed. */
  unlink(keys: string[]): Promise<number>;
  subscribe(channel: string, listener: (message: string) => void, resubscribed?: () => void): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Sharded pub/sub (SSUBSCRIBE) on a Redis Cluster; the same as `subscribe` on a single Redis. */
  ssubscribe(channel: string, listener: (message: string) => void, resubscribed?: () => void): Promise<void>;
  sunsubscribe(channel: string): Promise<void>;
  close(): void;
}
