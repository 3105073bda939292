import type { ConsolaInstance } from "consola";
import { Cluster, type Redis } from "ioredis";
import { LinkHealth, withTimeout } from "./link-health.ts";
import type { RedisConnection } from "./redis-connection.ts";
import { redactUrl } from "./redis-link.ts";
import { keySlot } from "./shard-tags.ts";
import { BackendUnavailable } from "./state.ts";

export interface RedisClusterLinkOptions {
  /** URLs of some cluster nodes (`redis://[user:pass@]host:port`): any one that answers finds the rest. */
  seeds: string[];
  /** A command not answered within this many milliseconds fails as BackendUnavailable. */
  timeoutMs: number;
  log: ConsolaInstance;
}

type Subscription = { listener: (message: string) => void; resubscribed?: () => void };

/**
 * The `RedisConnection` for a Redis Cluster, on ioredis (Bun's client does not follow MOVED: NOTES-rcluster.md).
 * Each command goes to the master of its keys' slot, written at once on that master's connection, in call
 * order. While a shard is away (its master died, a replica not yet promoted) its commands fail fast as
 * BackendUnavailable; the others go on. Sharded pub/sub (`ssubscribe`/`spublish`) keeps one subscriber
 * connection per shard and subscribes again after each failover or resharding.
 */
export class RedisClusterLink implements RedisConnection {
  readonly #cluster: Cluster;
  readonly #options: RedisClusterLinkOptions;
  /** Every script used so far (text → SHA1): loaded on every node the cluster (re)connects to. */
  readonly #scripts = new Map<string, string>();
  #scriptLoads = 0;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #sharded = new Map<string, Subscription>();
  readonly #reconnected: (() => void)[] = [];
  #opened = false;
  readonly #health: LinkHealth;

  constructor(options: RedisClusterLinkOptions) {
    this.#options = options;
    this.#health = new LinkHealth(options.log, "Redis Cluster");
    const first = new URL(options.seeds[0] ?? "redis://127.0.0.1:6379");
    this.#cluster = new Cluster(options.seeds.map(seedNode), {
      lazyConnect: true,
      // Fail fast while a shard is away, as RedisLink: nothing queued to run late and out of order.
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      // ioredis retries a command refused on a closed connection or CLUSTERDOWN after a delay: it would then
      // run after commands sent later (measured: INCRBY 1, 2, 3 on one key answered 6, 2, 5). Fail instead.
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      // Nor follow a MOVED or ASK: the command sent again would run after commands sent later to the new
      // master (seen in a failover mid-traffic: a source's 190 and 191 delivered after its 192 and 193).
      // It fails as BackendUnavailable instead, and the slot map is read again (#failure).
      maxRedirections: 0,
      shardedSubscribers: true,
      slotsRefreshTimeout: options.timeoutMs,
      // Keep looking for the cluster for as long as it takes; commands meanwhile fail fast.
      clusterRetryStrategy: () => Math.min(options.timeoutMs, 500),
      redisOptions: {
        username: decodeURIComponent(first.username) || undefined,
        password: decodeURIComponent(first.password) || undefined,
        connectTimeout: options.timeoutMs,
        maxRetriesPerRequest: 1,
        // A command written to a connection that then closed is not written again on reconnect: late, it
        // would run after commands sent since.
        autoResendUnfulfilledCommands: false,
      },
    });
    this.#cluster.on("+node", (node: Redis) => this.#nodeAdded(node));
    this.#cluster.on("message", (channel: string, message: string) => this.#subscriptions.get(channel)?.listener(message));
    this.#cluster.on("smessage", (channel: string, message: string) => this.#sharded.get(channel)?.listener(message));
    // ioredis has subscribed every shard's channels again after a topology change.
    this.#cluster.on("subscribersReady", () => {
      if (this.#opened) for (const { resubscribed } of this.#sharded.values()) resubscribed?.();
    });
    // Errors are answered per command (and logged once per outage): these events only need a listener.
    this.#cluster.on("error", (error: Error) => this.#options.log.debug(`Redis Cluster: ${error.message}`));
    this.#cluster.on("node error", (error: Error) => this.#options.log.debug(`Redis Cluster node: ${error.message}`));
  }

  async open(): Promise<void> {
    try {
      await withTimeout(this.#cluster.connect(), this.#options.timeoutMs * 5, "Redis Cluster");
      // Node connections open lazily: a command sent while one is still connecting would fail. Open them now.
      await withTimeout(Promise.all(this.#cluster.nodes("master").map((node) => node.ping())), this.#options.timeoutMs, "Redis Cluster");
      this.#opened = true;
    } catch (error) {
      this.close();
      const seeds = this.#options.seeds.map(redactUrl).join(", ");
      throw new BackendUnavailable(`cannot reach Redis Cluster at ${seeds}: ${(error as Error).message}`);
    }
  }

  onReconnect(listener: () => void): void {
    this.#reconnected.push(listener);
  }

  get healthy(): boolean {
    return this.#cluster.status === "ready" && !this.#health.down;
  }

  get full(): boolean {
    return this.#health.full;
  }

  async probeRoom(key: string): Promise<void> {
    if (!this.#health.full) return;
    await this.call("SET", [key, "1", "PX", 1_000]);
    this.#health.roomAgain();
  }

  async call(command: string, args: (string | number)[]): Promise<unknown> {
    try {
      const reply = await withTimeout(this.#cluster.call(command, ...args.map(String)), this.#options.timeoutMs, "Redis Cluster");
      this.#health.reached();
      return reply;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /**
   * As `RedisLink.script`: by SHA1 only, never EVAL after a NOSCRIPT. The first use writes SCRIPT LOAD to
   * every node before the EVALSHA, and a node the cluster connects to later (a promoted replica, a node
   * back from a restart) gets every script before anything else is sent to it.
   */
  async script(lua: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    let sha = this.#scripts.get(lua);
    if (!sha) {
      this.#scripts.set(lua, (sha = new Bun.CryptoHasher("sha1").update(lua).digest("hex")));
      for (const node of this.#cluster.nodes("all")) load(node, lua);
    }
    const loads = this.#scriptLoads;
    try {
      return await this.call("EVALSHA", [sha, keys.length, ...keys, ...args]);
    } catch (error) {
      if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
      if (loads === this.#scriptLoads) {
        this.#options.log.warn("a Redis Cluster node forgot webtalk's scripts (SCRIPT FLUSH?): loading them again everywhere");
        this.#scriptLoads++;
        for (const node of this.#cluster.nodes("all")) for (const text of this.#scripts.keys()) load(node, text);
      }
      throw new BackendUnavailable("Redis did not know the script (flushed): not run");
    }
  }

  async everyMaster(command: string, args: (string | number)[]): Promise<unknown[]> {
    const masters = this.#cluster.nodes("master");
    try {
      return await withTimeout(Promise.all(masters.map((node) => node.call(command, ...args.map(String)))), this.#options.timeoutMs, "Redis Cluster");
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Each master in turn: its keys are the ones it serves, so none is seen twice (a resharding aside). */
  async *scan(pattern: string, count: number): AsyncIterable<string[]> {
    for (const master of this.#cluster.nodes("master")) {
      let cursor = "0";
      do {
        const [next, found] = await withTimeout(master.scan(cursor, "MATCH", pattern, "COUNT", count), this.#options.timeoutMs, "Redis Cluster").catch(
          (error: unknown) => {
            throw this.#failure(error);
          },
        );
        cursor = String(next);
        yield found;
      } while (cursor !== "0");
    }
  }

  /** One UNLINK per slot among the keys: a command's keys must share a slot. */
  async unlink(keys: string[]): Promise<number> {
    const bySlot = Map.groupBy(keys, keySlot);
    const counts = await Promise.all([...bySlot.values()].map((group) => this.call("UNLINK", group)));
    return counts.reduce<number>((sum, n) => sum + Number(n), 0);
  }

  /** Classic pub/sub: every message crosses every node of the cluster (NOTES-rcluster.md (a)). */
  async subscribe(channel: string, listener: (message: string) => void, resubscribed?: () => void): Promise<void> {
    this.#subscriptions.set(channel, { listener, resubscribed });
    await this.#subscribing(this.#cluster.subscribe(channel));
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.#subscriptions.delete(channel)) return;
    await this.#subscribing(this.#cluster.unsubscribe(channel));
  }

  /** Sharded pub/sub: heard on the shard serving the channel's slot only; made again after a failover. */
  async ssubscribe(channel: string, listener: (message: string) => void, resubscribed?: () => void): Promise<void> {
    this.#sharded.set(channel, { listener, resubscribed });
    await this.#subscribing(this.#cluster.ssubscribe(channel));
  }

  async sunsubscribe(channel: string): Promise<void> {
    if (!this.#sharded.delete(channel)) return;
    await this.#subscribing(this.#cluster.sunsubscribe(channel));
  }

  /** Publishes to the shard of the channel's slot; resolves to how many subscribers there heard it. */
  async spublish(channel: string, message: string): Promise<number> {
    return Number(await this.call("SPUBLISH", [channel, message]));
  }

  close(): void {
    this.#cluster.disconnect();
  }

  async #subscribing(pending: Promise<unknown>): Promise<void> {
    try {
      await withTimeout(pending, this.#options.timeoutMs, "Redis Cluster");
    } catch (error) {
      throw this.#failure(error);
    }
  }

  // A node joins the pool at start, after a failover and after its connection came back: it may be a
  // fresh process that knows no script, and what the cluster holds may have changed.
  #nodeAdded(node: Redis): void {
    for (const lua of this.#scripts.keys()) load(node, lua);
    if (!this.#opened) return;
    for (const listener of this.#reconnected) listener();
    for (const { resubscribed } of this.#subscriptions.values()) resubscribed?.();
  }

  #failure(error: unknown): Error {
    if (error instanceof BackendUnavailable) return this.#health.failed(error);
    // With maxRedirections 0 ioredis wraps every reply error, a server's own (CROSSSLOT, OOM) included.
    const wrapped = /^Too many Cluster redirections\. Last error: ReplyError: (.*)$/s.exec(String((error as Error).message));
    if (wrapped && !TRANSIENT.test(wrapped[1]!)) {
      const reply = new Error(wrapped[1]!);
      reply.name = "ReplyError";
      return this.#health.serverError(reply);
    }
    // Without the wrapper's words: "Too many Cluster redirections" only says that none was followed.
    const message = String((error as Error).message).replace(/^Too many Cluster redirections\. Last error: (ReplyError: )?/, "");
    // The slots moved (a failover, a resharding): the command was not run; learn where they are now.
    if (message.includes("MOVED") || message.includes("ASK")) this.#cluster.refreshSlotsCache();
    if ((error as Error).name === "ReplyError" && !TRANSIENT.test(message)) return this.#health.serverError(error as Error);
    return this.#health.failed(new BackendUnavailable(`Redis Cluster unavailable: ${message}`));
  }
}

/** Replies a cluster gives while its slot map is changing: the shard is away, not the command wrong. */
const TRANSIENT = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|LOADING|MASTERDOWN|READONLY)/;

// Not awaited: whatever is sent to that node next is written after it on the same connection.
function load(node: Redis, lua: string): void {
  node.script("LOAD", lua).catch(() => undefined);
}

function seedNode(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 6379) };
}

