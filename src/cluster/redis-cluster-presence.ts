import type { RedisConnection } from "../state/redis-connection.ts";
import { ROUTE_SET } from "../state/redis-cluster-state.ts";
import { ONLINE_NODES } from "../state/route-redis.ts";
import { RedoQueue } from "../state/redo-queue.ts";
import type { ShardMap } from "../state/shard-map.ts";
import { COUNT_ONLINE, IS_ONLINE, MINE, NODE_STATS, RECLAIM_BATCH, sendHeld, SWEEP_GRACE_LEASES } from "./presence.ts";
import type { Presence, PresenceLocal } from "./presence-kind.ts";
import { parseNodeStats, PresenceBook } from "./presence-book.ts";
import { sessionClaim, SESSIONS_DROP_DEAD } from "./session-limit.ts";

// Who is online across a cluster on a Redis Cluster: presence.ts's rules, with each user's records in
// its shard (shard-map.ts: online, pver, sess:U, present:U, held:U) and a node's lease in every shard,
// so a script checks liveness where it runs. A change of where a user is online raises the user's
// presence version (pver) in the same step, and answers the user's channels: each channel's shard then
// records the route with that version (ROUTES, route_set in redis-cluster-state.ts), so a presence
// change and a join applied in either order end on the newest. A claim answers only once its routes
// are recorded, so a shout sent after the browser was admitted reaches its node.

// Lua: the user's new presence, as {flag, pver, nodes, channel...}: pver 0 when nothing changed.
const CHANGED = `
local function changed(T, U, flag, nodes)
  if redis.call('HEXISTS', T .. 'users', U) == 0 then return {flag, 0, nodes} end
  local out = {flag, redis.call('HINCRBY', T .. 'pver', U, 1), nodes}
  for _, c in ipairs(redis.call('HKEYS', T .. 'uch:' .. U)) do table.insert(out, c) end
  return out
end`;

// --sessions 1. KEYS[1]: the shard's online hash; ARGV: user, node, tag, the close message for a browser elsewhere.
const CLAIM = `${CHANGED}
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local flag = 0
if previous and previous ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. 'node:' .. previous) == 1 then
  redis.call('SPUBLISH', ARGV[3] .. 'to:' .. previous, ARGV[4])
  flag = 1
end
if previous == ARGV[2] then return {flag, 0, ARGV[2]} end
return changed(ARGV[3], ARGV[1], flag, ARGV[2])`;

// --sessions above 1: this node joins the user's nodes. Flag: online on another live node already.
const CLAIM_ALSO_BODY = `
local nodes = online_nodes(redis.call('HGET', KEYS[1], ARGV[1]))
local here = false
local elsewhere = 0
for _, node in ipairs(nodes) do
  if node == ARGV[2] then here = true
  elseif redis.call('EXISTS', ARGV[3] .. 'node:' .. node) == 1 then elsewhere = 1 end
end
if here then return {elsewhere, 0, online_value(nodes)} end
table.insert(nodes, ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], online_value(nodes))
return changed(ARGV[3], ARGV[1], elsewhere, online_value(nodes))`;

const CLAIM_ALSO = `${ONLINE_NODES}${CHANGED}${CLAIM_ALSO_BODY}`;

// CLAIM_ALSO with sess:U counted (session-limit.ts): ARGV[4] member, ARGV[5] limit, ARGV[6] 'reject' | 'replace'.
const CLAIM_LIMITED = `${ONLINE_NODES}${CHANGED}${sessionClaim("SPUBLISH")}
if not session_claim(ARGV[3], ARGV[1], ARGV[4], tonumber(ARGV[5]), ARGV[6] == 'reject') then return {-1, 0, ''} end
${CLAIM_ALSO_BODY}`;

// The user is no longer online on this node (ARGV[2]). Flag: still online on another live node.
const RELEASE = `${ONLINE_NODES}${CHANGED}
local nodes = online_nodes(redis.call('HGET', KEYS[1], ARGV[1]))
local kept = {}
for _, node in ipairs(nodes) do if node ~= ARGV[2] then table.insert(kept, node) end end
local elsewhere = 0
for _, node in ipairs(kept) do
  if redis.call('EXISTS', ARGV[3] .. 'node:' .. node) == 1 then elsewhere = 1 end
end
if #kept == #nodes then return {elsewhere, 0, ''} end
local value = online_value(kept)
if value then redis.call('HSET', KEYS[1], ARGV[1], value) else redis.call('HDEL', KEYS[1], ARGV[1]) end
return changed(ARGV[3], ARGV[1], elsewhere, value or '')`;

// presence.ts's SWEEP in one shard; answers the users it changed, each as CHANGED's reply whose flag is the user.
const SWEEP = `${ONLINE_NODES}${CHANGED}${SESSIONS_DROP_DEAD}
local T = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[3], ARGV[2], string.format('%.0f', now + tonumber(ARGV[3])))
local dead = {}
local any = false
local seen = redis.call('HGETALL', KEYS[3])
for i = 1, #seen, 2 do
  if tonumber(seen[i + 1]) < now and redis.call('EXISTS', T .. 'node:' .. seen[i]) == 0 then dead[seen[i]] = true; any = true end
end
if not any then return {} end
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local nodes = online_nodes(all[i + 1])
  local kept = {}
  for _, node in ipairs(nodes) do
    if dead[node] then redis.call('SREM', T .. 'present:' .. all[i], node) else table.insert(kept, node) end
  end
  if #kept < #nodes then
    local value = online_value(kept)
    if value then redis.call('HSET', KEYS[1], all[i], value) else redis.call('HDEL', KEYS[1], all[i]) end
    sessions_drop_dead(T, all[i], dead)
    table.insert(out, changed(T, all[i], all[i], value or ''))
  end
end
for node in pairs(dead) do
  redis.call('HDEL', KEYS[3], node)
  redis.call('SREM', KEYS[2], node)
end
return out`;

// presence.ts's RECLAIM (and RECLAIM_ALSO, ARGV[3] == 'also') for users of one shard: answers
// {lost users, changes...} where each change is CHANGED's reply whose flag is the user.
const RECLAIM = `${ONLINE_NODES}${CHANGED}${sendHeld("SPUBLISH")}
local T = ARGV[2]
local lost = {}
local out = {lost}
for i = 4, #ARGV do
  local U = ARGV[i]
  if redis.call('HEXISTS', T .. 'users', U) == 1 then
    local value = redis.call('HGET', KEYS[1], U)
    if ARGV[3] == 'also' then
      local nodes = online_nodes(value)
      local here = false
      for _, node in ipairs(nodes) do if node == ARGV[1] then here = true end end
      if not here then
        table.insert(nodes, ARGV[1])
        redis.call('HSET', KEYS[1], U, online_value(nodes))
        table.insert(out, changed(T, U, U, online_value(nodes)))
      end
      redis.call('SADD', T .. 'present:' .. U, ARGV[1])
      send_held(T, U, ARGV[1])
    elseif value ~= ARGV[1] and value and redis.call('EXISTS', T .. 'node:' .. value) == 1 then
      table.insert(lost, U)
    else
      if value ~= ARGV[1] then
        redis.call('HSET', KEYS[1], U, ARGV[1])
        table.insert(out, changed(T, U, U, ARGV[1]))
      end
      send_held(T, U, ARGV[1])
    end
  end
end
return out`;

// A node's lease in one shard, renewed. Where it had lapsed (a Redis failover, a pause) the shard held
// the whispers to this node's users meanwhile: they go to the browsers here in this same step, in offset
// order, so before any whisper the renewed lease lets through. Answers 1 when the lease had lapsed.
// KEYS[1]: the shard's online hash; ARGV: tag, node, lease in ms.
const RENEW = `${ONLINE_NODES}${sendHeld("SPUBLISH")}
local T, node = ARGV[1], ARGV[2]
local had = redis.call('SET', T .. 'node:' .. node, '1', 'PX', ARGV[3], 'GET')
redis.call('SADD', T .. 'nodes', node)
if had then return 0 end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  for _, n in ipairs(online_nodes(all[i + 1])) do if n == node then send_held(T, all[i], node) end end
end
return 1`;

// In one channel's shard: each route, as quads channel, user, pver, nodes after the tag (ARGV[1]).
const ROUTES = `${ROUTE_SET}
for i = 2, #ARGV, 4 do route_set(ARGV[1], ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]) end
return 1`;

// The members of channel C online on a live node, from its routes. KEYS: members:C, routes:C; ARGV[1]: the tag.
const ONLINE_IN = `
local alive = {}
local n = 0
for _, user in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local route = redis.call('HGET', KEYS[2], user)
  if route then
    for node in string.gmatch(string.sub(route, string.find(route, '|', 1, true) + 1), '[^,]+') do
      if alive[node] == nil then alive[node] = redis.call('EXISTS', ARGV[1] .. 'node:' .. node) end
      if alive[node] == 1 then n = n + 1; break end
    end
  end
end
return n`;

/** Routes recorded per script call. */
const ROUTES_BATCH = 500;

/** A presence change as CHANGED answers it: flag, version (0: unchanged), nodes, channels. */
type Change = [number, number, string, ...string[]];

/** Who is online across the cluster on a Redis Cluster, each node holding a lease in every shard. */
export class RedisClusterPresence implements Presence {
  #timer: Timer | undefined;
  #lapsed = false;
  #renewed = false;
  readonly #book = new PresenceBook();
  /** Routes (a channel shard, its quads) that could not be recorded, sent again until they are (#record). */
  readonly #unrecorded = new RedoQueue<[number, (string | number)[]]>((routes) => this.#routesScript(routes));

  constructor(
    private readonly redis: RedisConnection,
    private readonly shards: ShardMap,
    readonly nodeId: string,
    private readonly leaseMs: number,
    private readonly local: PresenceLocal,
    private readonly sameData: () => Promise<boolean>,
    private readonly several = false,
  ) {}

  async start(): Promise<void> {
    this.redis.onReconnect(() => (this.#lapsed = true));
    await this.#renew();
    this.#timer = setInterval(() => void this.#renew().catch(() => (this.#lapsed = true)), Math.max(100, this.leaseMs / 3));
  }

  onReclaimed(listener: () => void): void {
    this.#book.onReclaimed(listener);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#unrecorded.close();
    await Promise.all(
      this.shards.tags.map((tag) =>
        Promise.all([this.redis.call("DEL", [`${tag}node:${this.nodeId}`]), this.redis.call("HDEL", [`${tag}nodeseen`, this.nodeId])]).catch(() => undefined),
      ),
    );
    await this.redis.call("DEL", [this.shards.key(0, `nodestats:${this.nodeId}`)]).catch(() => undefined);
  }

  async isOnline(user: number): Promise<boolean> {
    const tag = this.#tag(user);
    return (await this.redis.script(IS_ONLINE, [`${tag}online`], [user, tag])) === 1;
  }

  async claim(user: number, replaced: string): Promise<boolean> {
    this.#book.claiming(user);
    const change = await this.#user(CLAIM, user, [replaced]);
    await this.#routes([[user, change]]);
    return change[0] === 1;
  }

  async claimAlso(user: number): Promise<boolean> {
    this.#book.claiming(user);
    const change = await this.#user(CLAIM_ALSO, user, []);
    await this.#routes([[user, change]]);
    return change[0] === 1;
  }

  async claimLimited(user: number, member: string, limit: number, reject: boolean): Promise<boolean | undefined> {
    const change = await this.#user(CLAIM_LIMITED, user, [member, limit, reject ? "reject" : "replace"]);
    if (change[0] === -1) return undefined;
    this.#book.claiming(user);
    await this.#routes([[user, change]]);
    return change[0] === 1;
  }

  async release(user: number): Promise<boolean> {
    this.#book.releasing(user);
    try {
      const change = await this.#user(RELEASE, user, []);
      await this.#routes([[user, change]]);
      return change[0] === 1;
    } catch (error) {
      this.#book.releaseFailed(user);
      throw error;
    }
  }

  async onlineCount(): Promise<number> {
    const counts = await Promise.all(this.shards.tags.map((tag) => this.redis.script(COUNT_ONLINE, [`${tag}online`], [tag])));
    return counts.reduce<number>((sum, n) => sum + Number(n), 0);
  }

  async onlineIn(channel: number): Promise<number> {
    const tag = this.#tag(channel);
    return Number(await this.redis.script(ONLINE_IN, [`${tag}members:${channel}`, `${tag}routes:${channel}`], [tag]));
  }

  async nodeStats(): Promise<Record<string, number>[]> {
    const tag = this.shards.tags[0]!;
    const raw = (await this.redis.script(NODE_STATS, [`${tag}nodes`], [tag])) as (string | string[])[];
    return parseNodeStats(raw, this.nodeId, this.local.stats());
  }

  /** Runs a script of the user's shard with args user, node, tag, ...extra; answers its Change. */
  async #user(lua: string, user: number, extra: (string | number)[]): Promise<Change> {
    const tag = this.#tag(user);
    return (await this.redis.script(lua, [`${tag}online`], [user, this.nodeId, tag, ...extra])) as Change;
  }

  /** Records each user's change in its channels' shards (a change with version 0 changed nothing). */
  async #routes(changes: [number, Change][]): Promise<void> {
    const quads = new Map<number, (string | number)[]>();
    for (const [user, [, version, nodes, ...channels]] of changes) {
      if (Number(version) === 0) continue;
      for (const channel of channels) {
        const shard = this.shards.of(Number(channel));
        const list = quads.get(shard) ?? [];
        quads.set(shard, list);
        list.push(channel, user, version, nodes);
      }
    }
    const calls: Promise<unknown>[] = [];
    for (const [shard, list] of quads) {
      for (let i = 0; i < list.length; i += ROUTES_BATCH * 4) calls.push(this.#record(shard, list.slice(i, i + ROUTES_BATCH * 4)));
    }
    await Promise.all(calls);
  }

  /**
   * Records routes (quads) in one channel shard. When that fails the user step has already taken, and
   * nothing else would record them: a second claim on the same node changes nothing and records
   * nothing, so the channel's shouts would never reach that node for the user. So they are sent again
   * in the background until recorded (route_set is versioned: a newer presence still wins), and the
   * failure is passed on.
   */
  async #record(shard: number, quads: (string | number)[]): Promise<void> {
    try {
      await this.#routesScript([shard, quads]);
    } catch (error) {
      this.#unrecorded.add([shard, quads]);
      throw error;
    }
  }

  async #routesScript([shard, quads]: [number, (string | number)[]]): Promise<void> {
    await this.redis.script(ROUTES, [this.shards.key(shard, "routes")], [this.shards.tags[shard]!, ...quads]);
  }

  async #renew(): Promise<void> {
    const same = await this.sameData();
    const stats = this.local.stats();
    const fields = Object.entries(stats).flat();
    const tags = this.shards.tags;
    // A lease in every shard, so a script checks liveness in its own; one that lapsed in any shard (its
    // master failed over meanwhile) may have let another node sweep our users there.
    const renewed = await Promise.all(tags.map((tag) => this.redis.script(RENEW, [`${tag}online`], [tag, this.nodeId, this.leaseMs])));
    if (renewed.some((lapsed) => lapsed === 1) && this.#renewed) this.#lapsed = true;
    this.#renewed = true;
    const grace = SWEEP_GRACE_LEASES * this.leaseMs;
    const swept = await Promise.all(
      tags.map((tag) => this.redis.script(SWEEP, [`${tag}online`, `${tag}nodes`, `${tag}nodeseen`], [tag, this.nodeId, grace]) as Promise<Change[]>),
    );
    for (const changes of swept) await this.#routesOf(changes);
    if (fields.length > 0) {
      const key = this.shards.key(0, `nodestats:${this.nodeId}`);
      await this.redis.call("HSET", [key, ...fields]);
      await this.redis.call("PEXPIRE", [key, this.leaseMs]);
    }
    await this.#book.releaseAgain((user) => this.release(user));
    if (this.#lapsed || !same) {
      await this.#prune();
      await this.#reclaim([...this.local.users()]);
      this.#lapsed = false;
      this.#book.reclaimed();
    }
  }

  /** The changes of a sweep or a reclaim: each one's flag is its user. */
  async #routesOf(changes: Change[]): Promise<void> {
    if (changes.length > 0) await this.#routes(changes.map((change) => [Number(change[0]), change]));
  }

  async #prune(): Promise<void> {
    const mine = await Promise.all(this.shards.tags.map((tag) => this.redis.script(MINE, [`${tag}online`], [this.nodeId]) as Promise<string[]>));
    for (const user of mine.flat().map(Number)) {
      if (this.#book.isClaimed(user)) continue;
      const change = await this.#user(RELEASE, user, []);
      await this.#routes([[user, change]]);
    }
  }

  async #reclaim(users: number[]): Promise<void> {
    const byShard = Map.groupBy(users, (user) => this.shards.of(user));
    for (const [shard, list] of byShard) {
      const tag = this.shards.tags[shard]!;
      for (let i = 0; i < list.length; i += RECLAIM_BATCH) {
        const args = [this.nodeId, tag, this.several ? "also" : "one", ...list.slice(i, i + RECLAIM_BATCH)];
        const [lost, ...changes] = (await this.redis.script(RECLAIM, [`${tag}online`], args)) as [string[], ...Change[]];
        for (const user of lost) this.local.replaced(Number(user));
        await this.#routesOf(changes);
      }
    }
  }

  #tag(id: number): string {
    return this.shards.tags[this.shards.of(id)]!;
  }
}
