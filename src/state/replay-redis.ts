import { bornMs, GLOBAL_STREAM, type ReplayLimits, type ReplayLog, type Since } from "../core/replay.ts";
import { newSalt } from "../core/secret.ts";
import type { RedisConnection } from "./redis-connection.ts";
import { ShardMap } from "./shard-map.ts";

// off:KEY holds the last offset of a source; win:KEY a list of "OFFSET:MILLIS:TEXT" (MILLIS on Redis's clock), newest last,
// trimmed to the count limit and expiring when the source has been quiet for the age limit.
// floor:KEY a hash of user → floor (the offset a member joined at); floors:uUSER the sources it has one in.
// order:KEY "CHECKED:DISORDER": the window's stamps were compared up to offset CHECKED, and DISORDER is
// the newest offset stamped earlier than the one before it (Redis's clock stepped back; 0 for none).
// Kept for channel 1 only, by SINCE, so that shouts pay nothing for it; no expiry (one key).

/**
 * Lua that numbers a message and keeps it in its source's window, leaving its offset in `offset`:
 * KEYS as replayKeys(), ARGV as appendArgs(). A script may add steps after it (the cluster publishes
 * in the same script, so the offset and the publish are one atomic step).
 */
export const APPEND_STEP = `
local offset = redis.call('INCR', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  local appendAt = redis.call('TIME')
  redis.call('RPUSH', KEYS[2], offset .. ':' .. string.format('%.0f', tonumber(appendAt[1]) * 1000 + math.floor(tonumber(appendAt[2]) / 1000)) .. ':' .. ARGV[1])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end`;

const APPEND = `${APPEND_STEP}
return offset`;

/** The Redis keys of a source (userStream/channelStream): its last offset and its window. */
export function replayKeys(prefix: string, key: string): [string, string] {
  return [`${prefix}off:${key}`, `${prefix}win:${key}`];
}

/**
 * APPEND_STEP's ARGV[1..3]: the text, the count limit, the age limit. An entry is stamped with Redis's
 * clock, not the node's: user IDs come from Redis's clock too, so channel 1's born-millisecond bound
 * (bornMs) holds on a node whose clock runs ahead of Redis's.
 */
export function appendArgs(text: string, limits: ReplayLimits): [string, number, number] {
  return [text, limits.count, limits.ageMs];
}

// Offsets in a window are consecutive, so the page after ARGV[1] starts at a computed index; at most
// ARGV[2] entries (-1: all). A window that starts after the position comes back from its head: a gap.
// The offsets belong to the epoch in Redis: when it is not this node's (ARGV[3]), Redis lost the data
// and this node has not noticed yet, so the positions a browser brings mean nothing here (false: a gap).
// A member (ARGV[4], '' for none) is read from no lower than its floor (KEYS[4]) and, given a birth
// millisecond (ARGV[5], -1 for none), after the newest entry stamped at or before it: by bisection
// where the stamps are in order (KEYS[5]; one scan per page made a long replay quadratic), so each
// entry's stamp is compared with the one before it once, by the first resume that reaches it. The reply's third
// element is where the page starts: above the position, the browser is told of a gap.
const SINCE = `
local function disorderTo(first, last)
  local checked, disorder = 0, 0
  local mark = redis.call('GET', KEYS[5])
  if mark then
    local c, d = string.match(mark, '^(%d+):(%d+)$')
    checked, disorder = tonumber(c), tonumber(d)
  end
  -- Offsets that started again (their key lost alone) make the mark meaningless: check all again.
  if checked > last then checked, disorder = 0, 0 end
  local i = checked - first
  if i < 0 then i = 0 end
  local entries = redis.call('LRANGE', KEYS[2], i, -1)
  if #entries < 2 and checked >= first then return disorder end
  local previous = nil
  for n, entry in ipairs(entries) do
    local at = tonumber(string.match(entry, '^%d+:(%d+):'))
    if previous and at < previous then disorder = first + i + n - 1 end
    previous = at
  end
  redis.call('SET', KEYS[5], (first + i + #entries - 1) .. ':' .. disorder)
  return disorder
end
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return false end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local from = tonumber(ARGV[1])
if ARGV[4] ~= '' then
  local floor = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0')
  if floor > from then from = floor end
end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head then return {last, {}, from} end
local first = tonumber(string.match(head, '^(%d+):'))
local born = tonumber(ARGV[5])
if born >= 0 and from < last then
  local i = from + 1 - first
  if i < 0 then i = 0 end
  if first + i < disorderTo(first, last) then
    for _, entry in ipairs(redis.call('LRANGE', KEYS[2], i, -1)) do
      local offset, at = string.match(entry, '^(%d+):(%d+):')
      if tonumber(at) <= born then from = tonumber(offset) end
    end
  else
    local low, high = i, redis.call('LLEN', KEYS[2])
    while low < high do
      local mid = math.floor((low + high) / 2)
      if tonumber(string.match(redis.call('LINDEX', KEYS[2], mid), '^%d+:(%d+):')) <= born then low = mid + 1 else high = mid end
    end
    if low > i then from = first + low - 1 end
  end
end
local start = from + 1 - first
if start < 0 then start = 0 end
local max = tonumber(ARGV[2])
local stop = -1
if max >= 0 then stop = start + max - 1 end
return {last, redis.call('LRANGE', KEYS[2], start, stop), from}`;

/**
 * Lua for RedisState's join script, run when it added the member: the floor is the channel's last
 * offset (none while nothing is numbered). In the join's own script, a resume on any node never finds
 * the member without its floor. `prefix`, `channel` and `user` are Lua expressions; the source is
 * channelStream's name ('c' .. channel). Unless `indexed` is false (a Redis Cluster, where the user's
 * keys live in another shard: every removal of the member removes its floor), the user's set of
 * sources with a floor (floors:uUSER) is kept too, so deleting the user forgets them.
 */
export function floorJoinStep(prefix: string, channel: string, user: string, indexed = true): string {
  return `
local floorLast = tonumber(redis.call('GET', ${prefix} .. 'off:c' .. ${channel}) or '0')
if floorLast > 0 then
  redis.call('HSET', ${prefix} .. 'floor:c' .. ${channel}, ${user}, floorLast)${indexed ? `
  redis.call('SADD', ${prefix} .. 'floors:u' .. ${user}, 'c' .. ${channel})` : ""}
end`;
}

/** Lua for RedisState's leave script: the member's floor goes with the membership. As floorJoinStep. */
export function floorLeaveStep(prefix: string, channel: string, user: string, indexed = true): string {
  return `
redis.call('HDEL', ${prefix} .. 'floor:c' .. ${channel}, ${user})${indexed ? `
redis.call('SREM', ${prefix} .. 'floors:u' .. ${user}, 'c' .. ${channel})` : ""}`;
}

// ARGV[2] is the prefix: the sources a user has floors in are only known once its set is read.
const FORGET = `
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('HDEL', ARGV[2] .. 'floor:' .. key, ARGV[1]) end
redis.call('DEL', KEYS[1])`;

// A source's keys with its floors, each also taken out of its user's set (ARGV[1] the prefix, ARGV[2] the source).
const DROP = `
for _, user in ipairs(redis.call('HKEYS', KEYS[3])) do redis.call('SREM', ARGV[1] .. 'floors:u' .. user, ARGV[2]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])`;

// On a Redis Cluster the users' sets are not kept (floorJoinStep's `indexed`): the keys alone.
const DROP_KEYS = `redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])`;

/**
 * The replay log of a cluster: offsets and windows in Redis, so every node numbers a source the same
 * way, and the epoch lives as long as the Redis data does (nodes restart without forcing gaps). On a
 * Redis Cluster a source's keys live in the shard of its user or channel (shard-map.ts), each shard
 * with a copy of the epoch, so a resume reads one shard.
 */
export class RedisReplay implements ReplayLog {
  readonly immediate = false;

  private constructor(
    /** Changes only when Redis lost the data (see `reopen`). */
    public epoch: string,
    private readonly redis: RedisConnection,
    private readonly shards: ShardMap,
    private readonly limits: ReplayLimits,
  ) {}

  static async open(redis: RedisConnection, prefix: string | ShardMap, limits: ReplayLimits): Promise<RedisReplay> {
    const shards = typeof prefix === "string" ? ShardMap.single(prefix) : prefix;
    return new RedisReplay(await takeEpoch(redis, shards), redis, shards, limits);
  }

  /**
   * After Redis lost webtalk's data the offsets start again from 1: take the new epoch (created here
   * unless another node already did), so a browser that resumes with the old one is told of a gap.
   */
  async reopen(): Promise<void> {
    this.epoch = await takeEpoch(this.redis, this.shards);
  }

  async append(key: string, text: string): Promise<number> {
    return Number(await this.redis.script(APPEND, this.#keys(key), appendArgs(text, this.limits)));
  }

  async last(key: string): Promise<number> {
    return Number((await this.redis.call("GET", [this.#keys(key)[0]])) ?? 0);
  }

  async since(key: string, offset: number, max = -1, member?: number): Promise<Since> {
    const shard = this.#shardOf(key);
    const keys = [...replayKeys(this.shards.tags[shard]!, key), this.shards.key(shard, "epoch"), this.shards.key(shard, `floor:${key}`), this.shards.key(shard, `order:${key}`)];
    const limit = max === Infinity ? -1 : max;
    const born = member !== undefined && key === GLOBAL_STREAM ? bornMs(member) : -1;
    const args = [offset, limit, this.epoch, member ?? "", born];
    const reply = (await this.redis.script(SINCE, keys, args)) as [number, string[], number] | null;
    if (!Array.isArray(reply)) return { gap: true };
    const [last, raw, from] = reply;
    if (offset > last) return { gap: true };
    if (offset === last) return { gap: false, entries: [] };
    if (from >= last) return { gap: false, entries: [], floor: from };
    const oldest = Date.now() - this.limits.ageMs;
    const window = raw.map(parseEntry).filter((entry) => entry.at >= oldest);
    // Past the window, it starts later: its #gap (as a floor), then what the window still holds.
    if (window.length === 0) return { gap: true };
    const entries = window.filter((e) => e.offset > from).map(({ offset, text }) => ({ offset, text }));
    const floor = entries.length > 0 ? Math.max(from, entries[0]!.offset - 1) : from;
    return floor > offset ? { gap: false, entries, floor } : { gap: false, entries };
  }

  /** Recorded by RedisState's join script itself (floorJoinStep): nothing more to do, no round trip. */
  joined(): void {}

  /** Removed by RedisState's leave script itself (floorLeaveStep). */
  left(): void {}

  /** On a Redis Cluster every removal of a membership removed its floor already (the user's delete included). */
  async forget(user: number): Promise<void> {
    if (this.shards.count > 1) return;
    await this.redis.script(FORGET, [this.shards.key(0, `floors:u${user}`)], [user, this.shards.tags[0]!]);
  }

  async drop(key: string): Promise<void> {
    const shard = this.#shardOf(key);
    const keys = [...this.#keys(key), this.shards.key(shard, `floor:${key}`), this.shards.key(shard, `order:${key}`)];
    if (this.shards.count > 1) await this.redis.script(DROP_KEYS, keys, []);
    else await this.redis.script(DROP, keys, [this.shards.tags[0]!, key]);
  }

  /** The source's offset and window keys, in its shard. */
  #keys(key: string): [string, string] {
    return replayKeys(this.shards.tags[this.#shardOf(key)]!, key);
  }

  /** A source is `cCHANNEL` or `uUSER` (userStream, channelStream): the shard of that ID. */
  #shardOf(key: string): number {
    return this.shards.count === 1 ? 0 : this.shards.of(Number(key.slice(1)));
  }
}

/**
 * The epoch Redis holds, created by the first node (SET NX); on a cluster shard 0's, copied to every
 * other shard that has none, so each resume checks it in its own shard.
 */
async function takeEpoch(redis: RedisConnection, shards: ShardMap): Promise<string> {
  const first = shards.key(0, "epoch");
  await redis.call("SET", [first, newSalt().slice(0, 12), "NX"]);
  const epoch = (await redis.call("GET", [first])) as string;
  await Promise.all(shards.tags.slice(1).map((tag) => redis.call("SET", [`${tag}epoch`, epoch, "NX"])));
  return epoch;
}

function parseEntry(raw: string): { offset: number; at: number; text: string } {
  const first = raw.indexOf(":");
  const second = raw.indexOf(":", first + 1);
  return { offset: Number(raw.slice(0, first)), at: Number(raw.slice(first + 1, second)), text: raw.slice(second + 1) };
}
