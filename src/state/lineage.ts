import { newSalt } from "../core/secret.ts";
import type { RedisLink } from "./redis-link.ts";
import { BackendUnavailable, GLOBAL_CHANNEL } from "./state.ts";

// Whether Redis still holds the history this node wrote into, or went back in time (restarted from an
// older dump, failed over to a lagging replica, flushed, its generation key deleted). Keys (under the
// prefix): generation (Redis's time in microseconds when the data was created, so a newer one is
// greater), seq (counts every change), writers (hash node → the seq of its last change), wipelock,
// lost (why the data was last discarded). Every changing script runs behind GUARD, which refuses before
// changing anything when the generation is not the caller's or Redis forgot the caller's last change:
// a per-node mark, so other nodes' changes after a rollback cannot hide it, and a reply lost on the
// way (the node knows less than Redis) is never mistaken for one.

/** The code of the Redis error a guarded script answers when Redis is not on this node's lineage. */
const REFUSED = "WEBTALK_LINEAGE";
/** The generation while a node discards the data: matches no node's, so every guarded change is refused. */
const WIPING = "wiping ";
/** How long a wiper holds the lock without renewing it; another node takes over after it. */
const WIPE_LOCK_MS = 10_000;
/** Keys unlinked per command while discarding. */
const DISCARD_BATCH = 1_000;
/**
 * The names webtalk gives its keys after the prefix, IDs included. The wipe
 * discards only these: another deployment sharing the Redis under a longer prefix (`webtalk:a:` next
 * to `webtalk:`) matches the SCAN pattern too, and must keep its data. A new key name must be added here.
 */
export const OWN_KEY = new RegExp(
  "^(?:generation|seq|writers|wipelock|lost|lineage|init|channels|nextchannel|nextuser|nodes|nodeseen|online|roomprobe|users|heldcount|kv|bus|epoch" +
    "|(?:held|members|uch|chnodes|sess|present):\\d+|(?:off|win):[cu]\\d+|floor:c\\d+|floors:u\\d+|(?:node|nodestats):[A-Za-z0-9_-]{12})$",
);
/** How long a node waits for another one's wipe before it gives up this time (the next check retries). */
const SETTLE_MS = 60_000;

// The guarded script's own keys and args come first; the lineage's three of each are appended.
const GUARD = `
local L, A = #KEYS - 2, #ARGV - 2
if redis.call('GET', KEYS[L]) ~= ARGV[A] then return redis.error_reply('${REFUSED} generation') end
local wrote = tonumber(redis.call('HGET', KEYS[L + 2], ARGV[A + 1]) or '0')
if wrote < tonumber(ARGV[A + 2]) then return redis.error_reply('${REFUSED} seq ' .. wrote) end
local seq = redis.call('INCR', KEYS[L + 1])
redis.call('HSET', KEYS[L + 2], ARGV[A + 1], seq)
local function body()
`;

const READ = `
return {redis.call('GET', KEYS[1]) or false, redis.call('HGET', KEYS[2], ARGV[1]) or '0',
  redis.call('EXISTS', KEYS[3]), redis.call('GET', KEYS[4]) or false}`;

// Takes the wipe, only while Redis still holds what the node judged broken (ARGV[1], '' when gone):
// two nodes that found the same break never both wipe, and none wipes data established since.
const BEGIN = `
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], '${WIPING}' .. ARGV[4])
return 1`;

// Only the wiper that still holds the lock: a new generation above every earlier one, channel 1, a
// new replay epoch (offsets start again: v2 pages get #epoch and #gap), and why; the nodes waiting
// for it hear it at once on ARGV[6], so none refuses its browsers' logins for longer than needed.
const ESTABLISH = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local t = redis.call('TIME')
local gen = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), tonumber(ARGV[2]) + 1))
redis.call('SET', KEYS[3], '1')
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('SET', KEYS[5], ARGV[4])
redis.call('SET', KEYS[6], ARGV[3])
redis.call('SET', KEYS[7], ARGV[5])
redis.call('SET', KEYS[1], gen)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[6], gen)
return gen`;

/** What Redis holds compared with what this node knows. */
export type Verdict =
  | { kind: "same" }
  /** Another node discarded the data and established `generation`: adopt it. */
  | { kind: "newer"; generation: string; cause: string }
  /** Another node is discarding the data now. */
  | { kind: "wiping" }
  /** The data cannot be trusted: it must be discarded. `seen` is the generation Redis holds ('' if none). */
  | { kind: "broken"; seen: string; cause: string };

/** The data after a break: the generation to adopt, why, and the keys this node discarded (if it did). */
export interface Settled {
  generation: string;
  cause: string;
  discarded?: number;
}

/** This node's place in the history of the data under one prefix. */
export class Lineage {
  /** The generation this node writes in. */
  generation = "";
  /** The highest seq Redis answered this node's changes in this generation. */
  #maxSeq = 0;
  readonly #refusalListeners: (() => void)[] = [];
  /** Wakes a node waiting for another's wipe (see `listen`). */
  #woken = Promise.withResolvers<void>();
  readonly #keys: string[];

  constructor(
    private readonly redis: RedisLink,
    private readonly prefix: string,
    readonly node: string,
  ) {
    this.#keys = [this.#k("generation"), this.#k("seq"), this.#k("writers")];
  }

  /** Wraps a changing script's body behind the guard: it answers {seq, what the body returns}. */
  static guarded(body: string): string {
    return `${GUARD}${body}\nend\nreturn {seq, body()}`;
  }

  /** Hears when another node has established a new generation, so a node waiting for it adopts it at once. */
  async listen(): Promise<void> {
    await this.redis.subscribe(this.#k("lineage"), () => {
      this.#woken.resolve();
      this.#woken = Promise.withResolvers<void>();
    });
  }

  /** Calls `listener` whenever a change was refused because Redis is not on this node's lineage. */
  onRefused(listener: () => void): void {
    this.#refusalListeners.push(listener);
  }

  /**
   * Runs a `guarded` script; a refusal throws BackendUnavailable (and tells the listeners). `keys` and
   * `args` are the caller's fresh arrays: the lineage's are appended to them, not copied (hot path).
   */
  async run(lua: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    const generation = this.generation;
    keys.push(...this.#keys);
    args.push(generation, this.node, this.#maxSeq);
    let reply: unknown;
    try {
      reply = await this.redis.script(lua, keys, args);
    } catch (error) {
      if (!String((error as Error).message).includes(REFUSED)) throw error;
      for (const listener of this.#refusalListeners) listener();
      throw new BackendUnavailable("Redis lost webtalk's data or went back in time: no changes until this node has re-established it");
    }
    const [seq, result] = reply as [number, unknown];
    // A reply from before an adoption belongs to the old history.
    if (generation === this.generation && seq > this.#maxSeq) this.#maxSeq = seq;
    return result;
  }

  /** Compares what Redis holds with what this node knows. */
  async read(): Promise<Verdict> {
    const keys = [this.#k("generation"), this.#k("writers"), this.#k("wipelock"), this.#k("lost")];
    const [current, wrote, locked, lost] = (await this.redis.script(READ, keys, [this.node])) as [string | null, string, number, string | null];
    const mine = this.generation;
    if (current !== null && current.startsWith(WIPING)) {
      return locked === 1 ? { kind: "wiping" } : { kind: "broken", seen: current, cause: current.slice(WIPING.length) };
    }
    if (current === mine && Number(wrote) >= this.#maxSeq) return { kind: "same" };
    if (current === null) return { kind: "broken", seen: "", cause: `Redis lost webtalk's data (generation ${mine} is gone)` };
    if (current === mine) {
      return { kind: "broken", seen: current, cause: `Redis went back in time (seq ${wrote} < seen ${this.#maxSeq}): ${ROLLBACK}` };
    }
    if (mine === "" || numeric(current) > numeric(mine)) return { kind: "newer", generation: current, cause: lost ?? "Redis lost webtalk's data" };
    return { kind: "broken", seen: current, cause: `Redis went back in time (generation ${current} is older than this node's ${mine}): ${ROLLBACK}` };
  }

  /**
   * From a verdict that is not "same" to a trusted generation: discards the data and establishes a
   * new one when this node is the first to take the wipe (after `announce`, so the other nodes stop
   * applying the bus first), else waits for the node that took it. Throws BackendUnavailable if the
   * wipe does not end within SETTLE_MS.
   */
  async settle(found: Verdict, announce?: () => Promise<void>): Promise<Settled> {
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      if (found.kind === "same") return { generation: this.generation, cause: "" };
      if (found.kind === "newer") return { generation: found.generation, cause: found.cause };
      if (found.kind === "broken" && (await this.#begin(found))) {
        await announce?.().catch(() => undefined);
        const discarded = await this.#discard();
        const generation = await this.#establish(found);
        if (generation) return { generation, cause: found.cause, discarded };
      } else await Promise.race([Bun.sleep(100), this.#woken.promise]);
      if (Date.now() > deadline) throw new BackendUnavailable("another node is still discarding webtalk's data in Redis");
      found = await this.read();
    }
  }

  /** From now on this node changes the data in `generation`, counting afresh. */
  adopt(generation: string): void {
    this.generation = generation;
    this.#maxSeq = 0;
  }

  /** Forgets this node's mark (a node that stops never writes again). */
  async retire(): Promise<void> {
    await this.redis.call("HDEL", [this.#k("writers"), this.node]);
  }

  async #begin(found: { seen: string; cause: string }): Promise<boolean> {
    const keys = [this.#k("generation"), this.#k("wipelock")];
    return (await this.redis.script(BEGIN, keys, [found.seen, this.node, WIPE_LOCK_MS, found.cause])) === 1;
  }

  /** Unlinks every key under the prefix but the generation and the lock; returns how many. */
  async #discard(): Promise<number> {
    const keep = new Set([this.#k("generation"), this.#k("wipelock")]);
    const pattern = `${this.prefix.replace(/[*?[\]\\]/g, "\\$&")}*`;
    let cursor = "0";
    let discarded = 0;
    do {
      const [next, found] = (await this.redis.call("SCAN", [cursor, "MATCH", pattern, "COUNT", DISCARD_BATCH])) as [string, string[]];
      cursor = String(next);
      const doomed = found.filter((key) => !keep.has(key) && OWN_KEY.test(key.slice(this.prefix.length)));
      if (doomed.length > 0) discarded += Number(await this.redis.call("UNLINK", doomed));
      await this.redis.call("PEXPIRE", [this.#k("wipelock"), WIPE_LOCK_MS]);
    } while (cursor !== "0");
    return discarded;
  }

  async #establish(found: { seen: string; cause: string }): Promise<string | undefined> {
    const keys = ["generation", "wipelock", "init", "channels", "nextchannel", "lost", "epoch"].map((name) => this.#k(name));
    const floor = Math.max(numeric(this.generation), numeric(found.seen));
    const args = [this.node, floor, found.cause, GLOBAL_CHANNEL, newSalt().slice(0, 12), this.#k("lineage")];
    const generation = await this.redis.script(ESTABLISH, keys, args);
    return typeof generation === "string" ? generation : undefined;
  }

  #k(name: string): string {
    return this.prefix + name;
  }
}

const ROLLBACK = "restored from an older snapshot or failed over to a lagging replica";

/** A generation's time; 0 for one written before generations were times (a random text). */
function numeric(generation: string): number {
  return /^\d+$/.test(generation) ? Number(generation) : 0;
}
