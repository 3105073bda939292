import { RedisClient } from "bun";
import type { ConsolaInstance } from "consola";
import { Deadlines } from "./deadlines.ts";
import { LinkHealth, withTimeout } from "./link-health.ts";
import type { RedisConnection } from "./redis-connection.ts";
import { BackendUnavailable } from "./state.ts";

/** What a command refused by a full Redis answers (maxmemory reached under noeviction). */
export { BACKEND_FULL } from "./link-health.ts";

export interface RedisLinkOptions {
  url: string;
  /** A command not answered within this many milliseconds fails as BackendUnavailable. */
  timeoutMs: number;
  log: ConsolaInstance;
}

/**
 * One connection to Redis for commands and scripts, plus one for the cluster bus. Commands fail fast
 * while Redis is away (never queue, never hang), the client reconnects by itself, and an outage is
 * logged once when it starts and once when it ends, not once per command.
 */
export class RedisLink implements RedisConnection {
  readonly #client: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #options: RedisLinkOptions;
  /** Every script used so far (text → SHA1): loaded again whenever Redis may have forgotten them. */
  readonly #scripts = new Map<string, string>();
  /** Counts the reloads of every script: a NOSCRIPT from before the last one asks for no other. */
  #scriptLoads = 0;
  readonly #subscriptions = new Map<string, { listener: (message: string) => void; resubscribed?: () => void }>();
  readonly #reconnected: (() => void)[] = [];
  #opened = false;
  readonly #health: LinkHealth;
  readonly #deadlines: Deadlines;

  constructor(options: RedisLinkOptions) {
    this.#options = options;
    this.#health = new LinkHealth(options.log, "Redis");
    this.#deadlines = new Deadlines(options.timeoutMs, () => new BackendUnavailable(`Redis did not answer within ${options.timeoutMs} ms`));
    // Auto-pipelining off: measured A/B/A/B with scripts/pipeline-rate.ts (20,000 pipelined per round, 2
    // nodes), it was no faster (shouts median ~23k/s on, ~29k/s off; whispers ~27k/s vs ~31k/s, noisy),
    // and commands are then written as they are sent, in call order, with nothing held for a later tick.
    const settings = { enableOfflineQueue: false, maxRetries: 4_294_967_295, connectionTimeout: options.timeoutMs, enableAutoPipelining: false };
    this.#client = new RedisClient(options.url, settings);
    this.#subscriber = new RedisClient(options.url, { ...settings, enableOfflineQueue: true });
    this.#client.onconnect = () => {
      this.#health.reached();
      // A Redis that restarted knows none of them: loaded before anything else is sent on the new link.
      this.#loadScripts();
      if (this.#opened) for (const listener of this.#reconnected) listener();
    };
    this.#subscriber.onconnect = () => this.#resubscribe();
  }

  /** Connects both links; throws BackendUnavailable when Redis cannot be reached at startup. */
  async open(): Promise<void> {
    try {
      await withTimeout(Promise.all([this.#client.connect(), this.#subscriber.connect()]), this.#options.timeoutMs, "Redis");
      this.#opened = true;
    } catch (error) {
      this.close();
      throw new BackendUnavailable(`cannot reach Redis at ${redactUrl(this.#options.url)}: ${(error as Error).message}`);
    }
  }

  /**
   * Calls `listener` each time the command link is connected again after a loss: what Redis holds
   * may have changed meanwhile (it may have restarted empty, or with another configuration).
   */
  onReconnect(listener: () => void): void {
    this.#reconnected.push(listener);
  }

  get healthy(): boolean {
    return this.#client.connected && !this.#health.down;
  }

  /** Whether Redis refused a write for want of memory and none has gone through since. */
  get full(): boolean {
    return this.#health.full;
  }

  /** While `full`: a small write to `key` (expiring at once) tells whether Redis has room again. */
  async probeRoom(key: string): Promise<void> {
    if (!this.#health.full) return;
    await this.call("SET", [key, "1", "PX", 1_000]);
    this.#health.roomAgain();
  }

  call(command: string, args: (string | number)[]): Promise<unknown> {
    return this.#send(command, args.map(String));
  }

  async #send(command: string, args: string[]): Promise<unknown> {
    try {
      const reply = await this.#deadlines.watch(this.#client.send(command, args));
      this.#health.reached();
      return reply;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /**
   * Runs a Lua script as one command, written to the link before this returns, in call order with every
   * other command: so a control connection may pipeline scripts, and Redis runs them in that order. By
   * its SHA1 only: the first use writes `SCRIPT LOAD` just before it, and every reconnect loads them all
   * before anything else. Never EVAL after a NOSCRIPT: sent later, it would run after commands issued
   * meanwhile. Redis forgot them only when an operator ran SCRIPT FLUSH: then the command fails as
   * BackendUnavailable (it changed nothing), the scripts are loaded again once, and what follows runs.
   */
  async script(lua: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    let sha = this.#scripts.get(lua);
    if (!sha) {
      this.#scripts.set(lua, (sha = new Bun.CryptoHasher("sha1").update(lua).digest("hex")));
      this.#load(lua);
    }
    const loads = this.#scriptLoads;
    // Built once, as the strings Bun sends (a spread, then a copy to strings, was two arrays per message).
    const argv = [sha, String(keys.length)];
    for (const key of keys) argv.push(key);
    for (const arg of args) argv.push(String(arg));
    try {
      return await this.#send("EVALSHA", argv);
    } catch (error) {
      if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
      if (loads === this.#scriptLoads) {
        this.#options.log.warn("Redis forgot webtalk's scripts (SCRIPT FLUSH?): loading them again; commands sent meanwhile answer [error] backend unavailable");
        this.#loadScripts();
      }
      throw new BackendUnavailable("Redis did not know the script (flushed): not run");
    }
  }

  #loadScripts(): void {
    this.#scriptLoads++;
    for (const lua of this.#scripts.keys()) this.#load(lua);
  }

  // Not awaited: the command that needs it is written right after, on the same link. A load that fails
  // (Redis away) leaves that command failing too, and the next connect loads it again.
  #load(lua: string): void {
    this.call("SCRIPT", ["LOAD", lua]).catch(() => undefined);
  }

  async everyMaster(command: string, args: (string | number)[]): Promise<unknown[]> {
    return [await this.call(command, args)];
  }

  async *scan(pattern: string, count: number): AsyncIterable<string[]> {
    let cursor = "0";
    do {
      const [next, found] = (await this.call("SCAN", [cursor, "MATCH", pattern, "COUNT", count])) as [string, string[]];
      cursor = String(next);
      yield found;
    } while (cursor !== "0");
  }

  async unlink(keys: string[]): Promise<number> {
    return Number(await this.call("UNLINK", keys));
  }

  /** Subscribes to a pub/sub channel, again after every reconnect (what was published meanwhile is gone). */
  async subscribe(channel: string, listener: (message: string) => void, resubscribed?: () => void): Promise<void> {
    this.#subscriptions.set(channel, { listener, resubscribed });
    await this.#subscriber.subscribe(channel, listener);
  }

  /** Stops hearing a channel (and stops subscribing to it again after reconnects). */
  async unsubscribe(channel: string): Promise<void> {
    if (!this.#subscriptions.delete(channel)) return;
    await this.#subscriber.unsubscribe(channel);
  }

  /** A single Redis has no shards: sharded pub/sub is plain pub/sub. */
  ssubscribe(channel: string, listener: (message: string) => void, resubscribed?: () => void): Promise<void> {
    return this.subscribe(channel, listener, resubscribed);
  }

  sunsubscribe(channel: string): Promise<void> {
    return this.unsubscribe(channel);
  }

  // Bun reconnects but does not resubscribe, and subscribing again would add a second listener:
  // drop the old one first.
  #resubscribe(): void {
    for (const [channel, { listener, resubscribed }] of this.#subscriptions) {
      this.#subscriber
        .unsubscribe(channel)
        .catch(() => undefined)
        .then(() => this.#subscriber.subscribe(channel, listener))
        .then(() => resubscribed?.())
        .catch((error: Error) => this.#options.log.warn(`could not resubscribe to ${channel}: ${error.message}`));
    }
  }

  close(): void {
    this.#client.close();
    this.#subscriber.close();
  }

  #failure(error: unknown): Error {
    if (error instanceof BackendUnavailable) return this.#health.failed(error);
    const code = (error as { code?: string }).code ?? "";
    if (code === "ERR_REDIS_SERVER_ERROR") return this.#health.serverError(error as Error);
    return this.#health.failed(new BackendUnavailable(`Redis unavailable: ${(error as Error).message}`));
  }
}

/** Hides a password in a Redis URL before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@");
}
