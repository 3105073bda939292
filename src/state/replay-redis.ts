import { bornMs, GLOBAL_STREAM, type ReplayLimits, type ReplayLog, type Since } from "../core/replay.ts";
import { newSalt } from "../core/secret.ts";
import type { RedisLink } from "./redis-link.ts";

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
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end`;

const APPEND = `${APPEND_STEP}
return offset`;

/** The Redis keys of a source (userStream/channelStream): its last offset and its window. */
export function replayKeys(prefix: string, key: string): [string, string] {
  return [`${prefix}off:${key}`, `${prefix}win:${key}`];
}

/**
 * APPEND_STEP's ARGV[1..4] for a message appended now. An entry is stamped with Redis's clock, not
 * ARGV[3]: user IDs come from Redis's clock too, so channel 1's born-millisecond bound (bornMs) holds
 * on a node whose clock runs ahead of Redis's.
 */
export function appendArgs(text: string, limits: ReplayLimits): [string, number, number, number] {
  return [text, limits.count, Date.now(), limits.ageMs];
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
 * channelStream's name ('c' .. channel).
 */
export function floorJoinStep(prefix: string, channel: string, user: string): string {
  return `
local floorLast = tonumber(redis.call('GET', ${prefix} .. 'off:c' .. ${channel}) or '0')
if floorLast > 0 then
  redis.call('HSET', ${prefix} .. 'floor:c' .. ${channel}, ${user}, floorLast)
  redis.call('SADD', ${prefix} .. 'floors:u' .. ${user}, 'c' .. ${channel})
end`;
}

/** Lua for RedisState's leave script: the member's floor goes with the membership. As floorJoinStep. */
export function floorLeaveStep(prefix: string, channel: string, user: string): string {
  return `
redis.call('HDEL', ${prefix} .. 'floor:c' .. ${channel}, ${user})
redis.call('SREM', ${prefix} .. 'floors:u' .. ${user}, 'c' .. ${channel})`;
}

// ARGV[2] is the prefix: the sources a user has floors in are only known once its set is read.
const FORGET = `
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('HDEL', ARGV[2] .. 'floor:' .. key, ARGV[1]) end
redis.call('DEL', KEYS[1])`;

// A source's keys with its floors, each also taken out of its user's set (ARGV[1] the prefix, ARGV[2] the source).
const DROP = `
for _, user in ipairs(redis.call('HKEYS', KEYS[3])) do redis.call('SREM', ARGV[1] .. 'floors:u' .. user, ARGV[2]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])`;

/**
 * The replay log of a cluster: offsets and windows in Redis, so every node numbers a source the same
 * way, and the epoch lives as long as the Redis data does (nodes restart without forcing gaps).
 */
export class RedisReplay implements ReplayLog {
  private constructor(
    /** Changes only when Redis lost the data (see `reopen`). */
    public epoch: string,
    private readonly redis: RedisLink,
    private readonly prefix: string,
    private readonly limits: ReplayLimits,
  ) {}

  static async open(redis: RedisLink, prefix: string, limits: ReplayLimits): Promise<RedisReplay> {
    await redis.call("SET", [`${prefix}epoch`, newSalt().slice(0, 12), "NX"]);
    const epoch = (await redis.call("GET", [`${prefix}epoch`])) as string;
    return new RedisReplay(epoch, redis, prefix, limits);
  }

  /**
   * After Redis lost webtalk's data the offsets start again from 1: take the new epoch (created here
   * unless another node already did), so a browser that resumes with the old one is told of a gap.
   */
  async reopen(): Promise<void> {
    await this.redis.call("SET", [`${this.prefix}epoch`, newSalt().slice(0, 12), "NX"]);
    this.epoch = (await this.redis.call("GET", [`${this.prefix}epoch`])) as string;
  }

  async append(key: string, text: string): Promise<number> {
    return Number(await this.redis.script(APPEND, replayKeys(this.prefix, key), appendArgs(text, this.limits)));
  }

  async since(key: string, offset: number, max = -1, member?: number): Promise<Since> {
    const keys = [...replayKeys(this.prefix, key), `${this.prefix}epoch`, this.#floorKey(key), this.#orderKey(key)];
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
    if (window.length === 0 || window[0]!.offset > from + 1) return { gap: true };
    const entries = window.filter((e) => e.offset > from).map(({ offset, text }) => ({ offset, text }));
    return from > offset ? { gap: false, entries, floor: from } : { gap: false, entries };
  }

  /** Recorded by RedisState's join script itself (floorJoinStep): nothing more to do, no round trip. */
  joined(): void {}

  /** Removed by RedisState's leave script itself (floorLeaveStep). */
  left(): void {}

  async forget(user: number): Promise<void> {
    await this.redis.script(FORGET, [this.#floorsOf(user)], [user, this.prefix]);
  }

  async drop(key: string): Promise<void> {
    await this.redis.script(DROP, [...replayKeys(this.prefix, key), this.#floorKey(key), this.#orderKey(key)], [this.prefix, key]);
  }

  #floorKey(key: string): string {
    return `${this.prefix}floor:${key}`;
  }

  #orderKey(key: string): string {
    return `${this.prefix}order:${key}`;
  }

  #floorsOf(user: number): string {
    return `${this.prefix}floors:u${user}`;
  }
}

function parseEntry(raw: string): { offset: number; at: number; text: string } {
  const first = raw.indexOf(":");
  const second = raw.indexOf(":", first + 1);
  return { offset: Number(raw.slice(0, first)), at: Number(raw.slice(first + 1, second)), text: raw.slice(second + 1) };
}
