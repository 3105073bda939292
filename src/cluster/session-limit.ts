// --sessions N exact across a cluster: each user's browsers, wherever they are, in one sorted set.
//
// sess:U (sorted set) holds one member per open browser of user U on any node, `NODE:SID` (SID: the
// browser's number on its node, never reused while the node lives), scored by its login time on
// Redis's clock (µs), so the lowest score is the oldest browser cluster-wide. Only with --sessions
// above 1: with 1 the online hash alone says where the user's one browser is (presence.ts's CLAIM).
//
// The presence claim adds the member in the same script (presence.ts's CLAIM_LIMITED): two tabs logging
// in at once on two nodes are counted one after the other, so the set never holds more than N. Past N,
// `reject` adds nothing and the login is refused; `replace` pops the oldest and tells its node, on that
// node's channel (`to:NODE`, bus.ts's `q`), to close that one browser (4002). A browser that closes
// removes its member; the sweep removes those of a dead node (presence.ts's SWEEP); a node back from a
// lapse adds its browsers again only while the set has room, and closes the rest (SESSIONS_REASSERT).

import type { RedisConnection } from "../state/redis-connection.ts";
import { ShardMap } from "../state/shard-map.ts";

/**
 * Lua: `session_claim(p, user, member, limit, reject)` adds the member (now, on Redis's clock) unless
 * the user has `limit` already: then it answers false under reject, or pops the oldest and publishes
 * to each one's node that it must close it.
 */
export const sessionClaim = (publish: string) => `
local function session_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function session_claim(p, user, member, limit, reject)
  local key = p .. 'sess:' .. user
  local count = redis.call('ZCARD', key)
  if count >= limit then
    if reject then return false end
    local oldest = redis.call('ZPOPMIN', key, count - limit + 1)
    for i = 1, #oldest, 2 do
      local colon = string.find(oldest[i], ':', 1, true)
      redis.call('${publish}', p .. 'to:' .. string.sub(oldest[i], 1, colon - 1),
        '{"k":"q","u":' .. user .. ',"s":' .. string.sub(oldest[i], colon + 1) .. '}')
    end
  end
  redis.call('ZADD', key, string.format('%.0f', session_now()), member)
  return true
end`;
export const SESSION_CLAIM = sessionClaim("PUBLISH");

/** Lua: `sessions_drop_dead(p, user, dead)` removes the user's browsers on the nodes of the set `dead`. */
export const SESSIONS_DROP_DEAD = `
local function sessions_drop_dead(p, user, dead)
  local key = p .. 'sess:' .. user
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if dead[string.sub(member, 1, string.find(member, ':', 1, true) - 1)] then redis.call('ZREM', key, member) end
  end
end`;

// After a lapse the sweep may have dropped this node's browsers: each is added again (oldest first)
// while the user has room, and the ones that find none are returned, as user, SID, ... to be closed
// here. ARGV: prefix, node, limit, then per user: user, how many SIDs, the SIDs.
const sessionsReassert = (publish: string) => `${sessionClaim(publish)}
local out = {}
local limit = tonumber(ARGV[3])
local i = 4
while i <= #ARGV do
  local user, n = ARGV[i], tonumber(ARGV[i + 1])
  local key = ARGV[1] .. 'sess:' .. user
  for j = i + 2, i + 1 + n do
    local member = ARGV[2] .. ':' .. ARGV[j]
    if not redis.call('ZSCORE', key, member) then
      if redis.call('ZCARD', key) < limit then
        redis.call('ZADD', key, string.format('%.0f', session_now()), member)
      else
        table.insert(out, user)
        table.insert(out, ARGV[j])
      end
    end
  end
  i = i + 2 + n
end
return out`;

const SESSIONS_REASSERT = sessionsReassert("PUBLISH");
/** On a Redis Cluster the claim publishes with SPUBLISH in the user's shard. */
const SESSIONS_REASSERT_SHARDED = sessionsReassert("SPUBLISH");

/** Users whose browsers are re-asserted per script call: one call never blocks Redis for long. */
const REASSERT_BATCH = 500;

/** This node's side of sess:U: numbers its browsers, removes them, re-asserts them after a lapse. */
export class ClusterSessionLimit {
  #next = 0;
  readonly #shards: ShardMap;
  readonly #reassert: string;

  constructor(
    private readonly redis: RedisConnection,
    prefix: string | ShardMap,
    private readonly nodeId: string,
    readonly limit: number,
    readonly reject: boolean,
  ) {
    this.#shards = typeof prefix === "string" ? ShardMap.single(prefix) : prefix;
    this.#reassert = this.#shards.count > 1 ? SESSIONS_REASSERT_SHARDED : SESSIONS_REASSERT;
  }

  /** A new browser's number on this node. */
  nextSession(): number {
    return ++this.#next;
  }

  /** Its member in sess:U. */
  member(session: number): string {
    return `${this.nodeId}:${session}`;
  }

  /** The browser closed (or its login was undone): its slot is free. */
  drop(user: number, session: number): Promise<void> {
    return this.redis.call("ZREM", [this.#shards.key(this.#shards.of(user), `sess:${user}`), this.member(session)]).then(() => undefined);
  }

  /**
   * After a lapse: adds this node's browsers again within each user's limit; answers the ones that found
   * no room (their user had N elsewhere meanwhile), to be closed here. One script per shard per batch.
   */
  async reassert(users: Iterable<[number, number[]]>): Promise<[number, number][]> {
    const extra: [number, number][] = [];
    const batches = new Map<number, { args: (string | number)[]; count: number }>();
    const flush = async (shard: number) => {
      const batch = batches.get(shard);
      if (!batch || batch.count === 0) return;
      batches.delete(shard);
      const args = [this.#shards.tags[shard]!, this.nodeId, this.limit, ...batch.args];
      const out = (await this.redis.script(this.#reassert, [this.#shards.key(shard, "sess")], args)) as string[];
      for (let i = 0; i < out.length; i += 2) extra.push([Number(out[i]), Number(out[i + 1])]);
    };
    for (const [user, sessions] of users) {
      if (sessions.length === 0) continue;
      const shard = this.#shards.of(user);
      const batch = batches.get(shard) ?? { args: [], count: 0 };
      batches.set(shard, batch);
      batch.args.push(user, sessions.length, ...sessions);
      if (++batch.count >= REASSERT_BATCH) await flush(shard);
    }
    for (const shard of [...batches.keys()]) await flush(shard);
    return extra;
  }
}
