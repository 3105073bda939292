import { newSalt } from "../core/secret.ts";
import type { RedisConnection } from "./redis-connection.ts";
import type { ShardMap } from "./shard-map.ts";
import { BackendUnavailable, GLOBAL_CHANNEL } from "./state.ts";

// Whether Redis still holds the history this node wrote into, or went back in time (restarted from an
// older dump, failed over to a lagging replica, flushed, its generation key deleted). Keys (under the
// prefix): generation (Redis's time in microseconds when the data was created, so a newer one is
// greater), writers (hash node → how many changes the node made: its seq), wipelock, lost (why the
// data was last discarded). Every changing script runs behind GUARD, which refuses without changing
// anything when the generation is not the caller's or Redis forgot the caller's last change: a
// per-node mark, so other nodes' changes after a rollback cannot hide it, and a reply lost on the way
// (the node knows less than Redis) is never mistaken for one. (seq, a count of every node's changes
// that each node's mark once copied, is no longer kept: a node's own count tells the same in one
// command instead of three. Nodes of either kind mark only their own field, so they share a Redis.)
//
// On a Redis Cluster (shard-map.ts) every shard keeps its own writers, and the node a seen-seq
// per shard, so a master that failed over to a lagging replica shows as a refusal in its shards; the
// generation is one for all shards, and the wipe (its lock, `lost`, the notice) lives in shard 0. A
// repair still discards every shard: records refer across shards, so keeping the shards that survived
// would pair them with one that went back in time. On a single Redis there is one shard.

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
  "^(?:generation|seq|writers|wipelock|lost|lineage|init|channels|nextchannel|nextuser|nodes|nodeseen|online|pver|roomprobe|users|heldcount|kv|bus|epoch" +
    "|(?:held|members|uch|chnodes|sess|present|routes|mv|gone|mver|deleted):\\d+|(?:off|win):[cu]\\d+|floor:c\\d+|order:[cu]\\d+|floors:u\\d+|(?:node|nodestats):[A-Za-z0-9_-]{12})$",
);
/** How long a node waits for another one's wipe before it gives up this time (the next check retries). */
const SETTLE_MS = 60_000;

// The guarded script's own keys and args come first; the lineage's two keys and three args are
// appended. The mark is counted up first and put back on a refusal (rare): one command on every
// change rather than a read, then a write. The script runs alone, so nobody sees the count between.
const GUARD = `
local L, A = #KEYS - 1, #ARGV - 2
if redis.call('GET', KEYS[L]) ~= ARGV[A] then return redis.error_reply('${REFUSED} generation') end
local seq = redis.call('HINCRBY', KEYS[L + 1], ARGV[A + 1], 1)
if seq <= tonumber(ARGV[A + 2]) then
  redis.call('HINCRBY', KEYS[L + 1], ARGV[A + 1], -1)
  return redis.error_reply('${REFUSED} seq ' .. (seq - 1))
end
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
// On a cluster the other shards were given the generation first (ARGV[7]; '0' on a single Redis), and
// channel 1 (ARGV[4]; '' when it lives in another shard) in its own shard (ESTABLISH_SHARD).
const ESTABLISH = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local gen = ARGV[7]
if gen == '0' then
  local t = redis.call('TIME')
  gen = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), tonumber(ARGV[2]) + 1))
end
redis.call('SET', KEYS[3], '1')
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[4])
  redis.call('SET', KEYS[5], ARGV[4])
end
redis.call('SET', KEYS[6], ARGV[3])
redis.call('SET', KEYS[7], ARGV[5])
redis.call('SET', KEYS[1], gen)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[6], gen)
return gen`;

// A shard other than 0 after a wipe: the generation shard 0 will hold, and channel 1 when it lives here.
const ESTABLISH_SHARD = `
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1')
if ARGV[2] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('SET', KEYS[4], ARGV[2])
end
return 1`;

// The first use of a prefix: a generation (SET NX, so of several nodes only the first creates it, and
// all read the same one back) and channel 1. A generation is Redis's time in microseconds when the data
// was created, so a later one is always greater. On a cluster shard 0 creates it and the others copy
// it (ARGV[2]); channel 1 is created in its own shard (ARGV[1]; '' elsewhere).
const ESTABLISH_FIRST = `
local t = redis.call('TIME')
local gen = ARGV[2]
if gen == '' then gen = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])) end
local fresh = redis.call('SET', KEYS[4], gen, 'NX')
if (redis.call('SETNX', KEYS[1], '1') == 1 or fresh) and ARGV[1] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[1])
  if not redis.call('GET', KEYS[3]) then redis.call('SET', KEYS[3], ARGV[1]) end
end
return redis.call('GET', KEYS[4])`;

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
  /** Per shard, the highest seq Redis answered this node's changes in this generation. */
  #maxSeq: number[];
  readonly #refusalListeners: (() => void)[] = [];
  /** Wakes a node waiting for another's wipe (see `listen`). */
  #woken = Promise.withResolvers<void>();
  /** Per shard, the guard's keys: generation, writers. */
  readonly #keys: string[][];

  constructor(
    private readonly redis: RedisConnection,
    private readonly shards: ShardMap,
    readonly node: string,
  ) {
    this.#keys = shards.tags.map((_, k) => ["generation", "writers"].map((name) => shards.key(k, name)));
    this.#maxSeq = shards.tags.map(() => 0);
  }

  /** Wraps a changing script's body behind the guard: it answers {seq, what the body returns}. */
  static guarded(body: string): string {
    return `${GUARD}${body}\nend\nreturn {seq, body()}`;
  }

  /**
   * Creates the data the first time this prefix is used (a generation in every shard, channel 1), or
   * finishes what a node that stopped half way left; answers the generation Redis holds.
   */
  async establishFirst(): Promise<string> {
    const first = await this.#establishFirst(0, "");
    await Promise.all(this.shards.tags.map((_, k) => (k === 0 ? undefined : this.#establishFirst(k, first))));
    return first;
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
   * Runs a `guarded` script in `shard` (whose tag all `keys` carry); a refusal throws BackendUnavailable
   * (and tells the listeners). `keys` and `args` are the caller's fresh arrays: the lineage's are
   * appended to them, not copied (hot path).
   */
  async run(lua: string, keys: string[], args: (string | number)[], shard = 0): Promise<unknown> {
    const generation = this.generation;
    keys.push(...this.#keys[shard]!);
    args.push(generation, this.node, this.#maxSeq[shard]!);
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
    if (generation === this.generation && seq > this.#maxSeq[shard]!) this.#maxSeq[shard] = seq;
    return result;
  }

  /** Compares what Redis holds, in every shard, with what this node knows. */
  async read(): Promise<Verdict> {
    // What this node had seen when each shard was asked: a change sent before the question ran before
    // it in Redis, so Redis's mark must be at least that; changes answered while the other shards are
    // being asked are not counted against this reading.
    const seen = [...this.#maxSeq];
    const found = await Promise.all(this.shards.tags.map((_, k) => this.#readShard(k)));
    // The wipe's lock lives in shard 0: a shard marked as wiping is being wiped while shard 0's is held.
    const locked = found[0]!.locked;
    const verdicts = found.map((shard, k) => this.#verdict(shard.current, shard.wrote, locked, shard.lost ?? found[0]!.lost, seen[k]!));
    if (verdicts.some((v) => v.kind === "wiping")) return { kind: "wiping" };
    if (verdicts.every((v) => v.kind === "same")) return { kind: "same" };
    const newer = verdicts[0]!;
    if (newer.kind === "newer" && verdicts.every((v) => v.kind === "newer" && v.generation === newer.generation)) return newer;
    const broken = verdicts.find((v) => v.kind === "broken") ?? { kind: "broken", seen: "", cause: "Redis's shards hold different generations" };
    const cause = broken.kind === "broken" ? broken.cause : "";
    const where = this.shards.count > 1 ? ` (shard ${verdicts.indexOf(broken)} of ${this.shards.count})` : "";
    return { kind: "broken", seen: found[0]!.current ?? "", cause: `${cause}${where}` };
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
    this.#maxSeq.fill(0);
  }

  /** Forgets this node's mark (a node that stops never writes again). */
  async retire(): Promise<void> {
    await Promise.all(this.#keys.map(([, writers]) => this.redis.call("HDEL", [writers!, this.node])));
  }

  async #readShard(shard: number): Promise<{ current: string | null; wrote: string; locked: number; lost: string | null }> {
    const keys = ["generation", "writers", "wipelock", "lost"].map((name) => this.shards.key(shard, name));
    const [current, wrote, locked, lost] = (await this.redis.script(READ, keys, [this.node])) as [string | null, string, number, string | null];
    return { current, wrote, locked, lost: shard === 0 ? lost : null };
  }

  #verdict(current: string | null, wrote: string, locked: number, lost: string | null, seen: number): Verdict {
    const mine = this.generation;
    if (current !== null && current.startsWith(WIPING)) {
      return locked === 1 ? { kind: "wiping" } : { kind: "broken", seen: current, cause: current.slice(WIPING.length) };
    }
    if (current === mine && Number(wrote) >= seen) return { kind: "same" };
    if (current === null) return { kind: "broken", seen: "", cause: `Redis lost webtalk's data (generation ${mine} is gone)` };
    if (current === mine) {
      return { kind: "broken", seen: current, cause: `Redis went back in time (seq ${wrote} < seen ${seen}): ${ROLLBACK}` };
    }
    if (mine === "" || numeric(current) > numeric(mine)) return { kind: "newer", generation: current, cause: lost ?? "Redis lost webtalk's data" };
    return { kind: "broken", seen: current, cause: `Redis went back in time (generation ${current} is older than this node's ${mine}): ${ROLLBACK}` };
  }

  /** Takes the wipe in shard 0, then marks every other shard as being wiped: from here on every change is refused. */
  async #begin(found: { seen: string; cause: string }): Promise<boolean> {
    const keys = [this.#k("generation"), this.#k("wipelock")];
    if ((await this.redis.script(BEGIN, keys, [found.seen, this.node, WIPE_LOCK_MS, found.cause])) !== 1) return false;
    const marked = this.#keys.slice(1).map(([generation]) => this.redis.call("SET", [generation!, `${WIPING}${found.cause}`]));
    await Promise.all(marked);
    return true;
  }

  /** Unlinks every key of every shard but shard 0's generation and lock; returns how many. */
  async #discard(): Promise<number> {
    const keep = new Set([this.#k("generation"), this.#k("wipelock")]);
    let discarded = 0;
    for await (const found of this.redis.scan(this.shards.pattern, DISCARD_BATCH)) {
      const doomed = found.filter((key) => {
        const name = this.shards.nameOf(key);
        return !keep.has(key) && name !== undefined && OWN_KEY.test(name);
      });
      if (doomed.length > 0) discarded += await this.redis.unlink(doomed);
      await this.redis.call("PEXPIRE", [this.#k("wipelock"), WIPE_LOCK_MS]);
    }
    return discarded;
  }

  /**
   * The new generation: above every earlier one, in every shard (shard 0 last, as it releases the lock
   * and wakes the waiting nodes), with channel 1 in its shard and a new replay epoch.
   */
  async #establish(found: { seen: string; cause: string }): Promise<string | undefined> {
    const floor = Math.max(numeric(this.generation), numeric(found.seen));
    const home = this.shards.of(GLOBAL_CHANNEL);
    let given = "0";
    if (this.shards.count > 1) {
      const [seconds, micros] = (await this.redis.call("TIME", [])) as [string, string];
      given = String(Math.max(Number(seconds) * 1_000_000 + Number(micros), floor + 1));
      await Promise.all(
        this.shards.tags.map((_, k) => {
          if (k === 0) return undefined;
          const keys = ["generation", "init", "channels", "nextchannel"].map((name) => this.shards.key(k, name));
          return this.redis.script(ESTABLISH_SHARD, keys, [given, k === home ? GLOBAL_CHANNEL : ""]);
        }),
      );
    }
    const keys = ["generation", "wipelock", "init", "channels", "nextchannel", "lost", "epoch"].map((name) => this.#k(name));
    const args = [this.node, floor, found.cause, home === 0 ? GLOBAL_CHANNEL : "", newSalt().slice(0, 12), this.#k("lineage"), given];
    const generation = await this.redis.script(ESTABLISH, keys, args);
    return typeof generation === "string" ? generation : undefined;
  }

  async #establishFirst(shard: number, generation: string): Promise<string> {
    const keys = ["init", "channels", "nextchannel", "generation"].map((name) => this.shards.key(shard, name));
    const channel = this.shards.of(GLOBAL_CHANNEL) === shard ? GLOBAL_CHANNEL : "";
    return (await this.redis.script(ESTABLISH_FIRST, keys, [channel, generation])) as string;
  }

  /** A key of shard 0, where the lineage's cluster-wide keys live. */
  #k(name: string): string {
    return this.shards.key(0, name);
  }
}

const ROLLBACK = "restored from an older snapshot or failed over to a lagging replica";

/** A generation's time; 0 for one written before generations were times (a random text). */
function numeric(generation: string): number {
  return /^\d+$/.test(generation) ? Number(generation) : 0;
}
