import type { ReplayLimits, ReplayLog, Since } from "../core/replay.ts";
import { newSalt } from "../core/secret.ts";
import type { RedisLink } from "./redis-link.ts";

// off:KEY holds the last offset of a source; win:KEY a list of "OFFSET:MILLIS:TEXT", newest last,
// trimmed to the count limit and expiring when the source has been quiet for the age limit.

/**
 * Lua that numbers a message and keeps it in its source's window, leaving its offset in `offset`:
 * KEYS as replayKeys(), ARGV as appendArgs(). A script may add steps after it (the cluster publishes
 * in the same script, so the offset and the publish are one atomic step).
 */
export const APPEND_STEP = `
local offset = redis.call('INCR', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('RPUSH', KEYS[2], offset .. ':' .. ARGV[3] .. ':' .. ARGV[1])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end`;

const APPEND = `${APPEND_STEP}
return offset`;

/** The Redis keys of a source (userStream/channelStream): its last offset and its window. */
export function replayKeys(prefix: string, key: string): [string, string] {
  return [`${prefix}off:${key}`, `${prefix}win:${key}`];
}

/** APPEND_STEP's ARGV[1..4] for a message appended now. */
export function appendArgs(text: string, limits: ReplayLimits): [string, number, number, number] {
  return [text, limits.count, Date.now(), limits.ageMs];
}

// Offsets in a window are consecutive, so the page after ARGV[1] starts at a computed index; at most
// ARGV[2] entries (-1: all). A window that starts after the position comes back from its head: a gap.
// The offsets belong to the epoch in Redis: when it is not this node's (ARGV[3]), Redis lost the data
// and this node has not noticed yet, so the positions a browser brings mean nothing here (false: a gap).
const SINCE = `
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return false end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local head = redis.call('LINDEX', KEYS[2], 0)
if not head then return {last, {}} end
local start = tonumber(ARGV[1]) + 1 - tonumber(string.match(head, '^(%d+):'))
if start < 0 then start = 0 end
local max = tonumber(ARGV[2])
local stop = -1
if max >= 0 then stop = start + max - 1 end
return {last, redis.call('LRANGE', KEYS[2], start, stop)}`;

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

  async since(key: string, offset: number, max = -1): Promise<Since> {
    const keys = [...replayKeys(this.prefix, key), `${this.prefix}epoch`];
    const limit = max === Infinity ? -1 : max;
    const reply = (await this.redis.script(SINCE, keys, [offset, limit, this.epoch])) as [number, string[]] | null;
    if (!Array.isArray(reply)) return { gap: true };
    const [last, raw] = reply;
    if (offset > last) return { gap: true };
    if (offset === last) return { gap: false, entries: [] };
    const oldest = Date.now() - this.limits.ageMs;
    const window = raw.map(parseEntry).filter((entry) => entry.at >= oldest);
    if (window.length === 0 || window[0]!.offset > offset + 1) return { gap: true };
    return { gap: false, entries: window.filter((e) => e.offset > offset).map(({ offset, text }) => ({ offset, text })) };
  }

  async drop(key: string): Promise<void> {
    await this.redis.call("DEL", replayKeys(this.prefix, key));
  }
}

function parseEntry(raw: string): { offset: number; at: number; text: string } {
  const first = raw.indexOf(":");
  const second = raw.indexOf(":", first + 1);
  return { offset: Number(raw.slice(0, first)), at: Number(raw.slice(first + 1, second)), text: raw.slice(second + 1) };
}
