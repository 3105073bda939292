import { inOffsetOrder } from "../core/catch-up.ts";
import { newSalt } from "../core/secret.ts";
import { BACKEND_FULL } from "./link-health.ts";
import { Lineage, type Settled, type Verdict } from "./lineage.ts";
import { type ChannelStep, MembershipRedo } from "./membership-redo.ts";
import type { RedisConnection } from "./redis-connection.ts";
import { CLEAR, HOLD, MEMBER_COUNT, MEMBERS, STORE, TAKE_HELD } from "./redis.ts";
import { floorJoinStep, floorLeaveStep } from "./replay-redis.ts";
import { ShardMap } from "./shard-map.ts";
import { keySlot } from "./shard-tags.ts";
import { BackendUnavailable, GLOBAL_CHANNEL, type JoinResult, type State, type StateCounts } from "./state.ts";

// The state on a Redis Cluster: the layout of docs/internals/redis-cluster.md. Every key lives in a
// shard (shard-map.ts): user U's records in shard U mod 64 (users, uch:U, mver:U, held:U, online and
// pver for presence), channel C's in shard C mod 64 (channels, members:C, mv:C, gone:C, routes:C,
// chnodes:C and the replay floors). A script touches one shard only, so a change that concerns a user
// and a channel is two steps, the user's first:
//
// - The user step changes uch:U (a hash: channel → version) and takes a new version from mver:U, the
//   user's count of membership changes, with Redis's time. It answers where the user is online (its
//   nodes and their version, pver).
// - The channel step applies the change to members:C only if its version is newer than the last one
//   applied for that user (mv:C), so two nodes' steps for one user and channel, in any interleaving,
//   end as the newest user step says. A leave leaves its version behind (a tombstone, listed in gone:C
//   by time) so that an older join arriving late cannot bring the member back; tombstones are pruned
//   after TOMBSTONE_MS, and a join's channel step older than STEP_MS (a node paused between the steps)
//   is refused ('stale'): the caller undoes its user step. A late leave or delete still applies: it can
//   only take a member out, and a newer join's version keeps it from doing even that.
// - A step that failed (a timeout, a failover) may still run late, or never: its outcome is unknown,
//   so the node finishes the change in the background (membership-redo.ts). Otherwise the two shards
//   would disagree for good.
//
// Routes: routes:C (hash: user → "PVER|NODES") holds where each member is online, with the version of
// that presence, so a presence change and a join applied in either order end on the newest; chnodes:C
// (node → count of members online there) follows it, and a shout is published to those nodes only.

/** A join's channel step issued longer ago than this (Redis's time of its user step) is refused. */
const STEP_MS = 60_000;
/** A tombstone outlives every channel step that could be older than it. */
const TOMBSTONE_MS = 2 * STEP_MS;
/** The version of a deleted user's removal: above any count of changes, so nothing brings it back. */
const GONE_VERSION = 2 ** 52;

const NOW_MS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end`;

// The ID rule of id-clock.ts on Redis's clock, max(last + 1, now in µs), raised to the next number in
// this shard (≡ shard mod shards), so an ID names its shard and no two shards give out the same one.
const NEXT_ID = `
local function nextId(counter, shards, shard)
  local t = redis.call('TIME')
  local last = tonumber(redis.call('GET', counter) or '0')
  local id = math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  id = id + (shard - id % shards) % shards
  local text = string.format('%.0f', id)
  redis.call('SET', counter, text)
  return text
end`;

/**
 * Lua: `route_set(T, C, U, pver, nodes)` records where member U of C is online (nodes: comma list, ''
 * for nowhere) unless a newer presence is recorded; a member's nodes are counted in chnodes:C. A
 * non-member's route is kept (a join of it may be on its way: its route must be the newest presence),
 * but not a deleted user's: a login's routes arriving after its killuser's channel step would
 * otherwise stay in routes:C for good.
 */
export const ROUTE_SET = `
local function route_parse(value)
  if not value then return -1, '' end
  local bar = string.find(value, '|', 1, true)
  return tonumber(string.sub(value, 1, bar - 1)), string.sub(value, bar + 1)
end
local function route_count(T, C, nodes, delta)
  for node in string.gmatch(nodes, '[^,]+') do
    if redis.call('HINCRBY', T .. 'chnodes:' .. C, node, delta) <= 0 then redis.call('HDEL', T .. 'chnodes:' .. C, node) end
  end
end
local function route_set(T, C, U, pver, nodes)
  local key = T .. 'routes:' .. C
  local old, oldNodes = route_parse(redis.call('HGET', key, U))
  if old >= pver or (old < 0 and nodes == '') then return end
  if redis.call('ZSCORE', T .. 'members:' .. C, U) then
    route_count(T, C, oldNodes, -1)
    route_count(T, C, nodes, 1)
  elseif tonumber(redis.call('HGET', T .. 'mv:' .. C, U) or '0') >= ${GONE_VERSION} then
    return
  end
  redis.call('HSET', key, U, string.format('%.0f', pver) .. '|' .. nodes)
end`;

// Guarded, in the new user's shard. ARGV: salt, tag, shards, shard, channel 1 ('' when it is gone).
const CREATE_USER = Lineage.guarded(`${NEXT_ID}${NOW_MS}
local T = ARGV[2]
local id = nextId(T .. 'nextuser', tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('HSET', T .. 'users', id, ARGV[1])
local v = 0
if ARGV[5] ~= '' then
  v = redis.call('INCR', T .. 'mver:' .. id)
  redis.call('HSET', T .. 'uch:' .. id, ARGV[5], v)
end
return {id, v, now_ms()}`);

// Guarded, in the new channel's shard. ARGV: tag, shards, shard.
const CREATE_CHANNEL = Lineage.guarded(`${NEXT_ID}
local id = nextId(ARGV[1] .. 'nextchannel', tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('SADD', ARGV[1] .. 'channels', id)
return id`);

// The user step of a join or leave, in U's shard. ARGV: tag, user, channel, 'join' | 'leave'.
// Answers {'no-user'} or {'ok', version, time, nodes, pver}: where the user is online now.
const USER_MEMBERSHIP = Lineage.guarded(`${NOW_MS}
local T, U = ARGV[1], ARGV[2]
if redis.call('HEXISTS', T .. 'users', U) == 0 then return {'no-user'} end
local v = redis.call('INCR', T .. 'mver:' .. U)
if ARGV[4] == 'join' then redis.call('HSET', T .. 'uch:' .. U, ARGV[3], v) else redis.call('HDEL', T .. 'uch:' .. U, ARGV[3]) end
return {'ok', v, now_ms(), redis.call('HGET', T .. 'online', U) or '', tonumber(redis.call('HGET', T .. 'pver', U) or '0')}`);

// Undoes a join's user step whose channel step did not apply (no such channel, or stale), unless a
// later change of the same membership came since. ARGV: tag, user, channel, version.
const USER_UNDO = Lineage.guarded(`
local key = ARGV[1] .. 'uch:' .. ARGV[2]
if redis.call('HGET', key, ARGV[3]) == ARGV[4] then redis.call('HDEL', key, ARGV[3]) end
return 1`);

// The channel step, in C's shard. ARGV: tag, channel, user, 'join' | 'leave' | 'gone', version, time of
// the user step, nodes, pver. Answers 'no-channel', 'stale', 'added' (the user became a member) or 'ok'.
// A join or leave of a member online somewhere tells those nodes (SPUBLISH on their channel in this
// shard) to subscribe or unsubscribe its browsers, before any later shout of C on the same channel.
const CHANNEL_MEMBERSHIP = Lineage.guarded(`${NOW_MS}${ROUTE_SET}
local T, C, U, action = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('SISMEMBER', T .. 'channels', C) == 0 then return 'no-channel' end
local now = now_ms()
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', T .. 'gone:' .. C, '-inf', now - ${TOMBSTONE_MS}, 'LIMIT', 0, 16)) do
  redis.call('ZREM', T .. 'gone:' .. C, gone)
  redis.call('HDEL', T .. 'mv:' .. C, gone)
end
local applied = redis.call('HGET', T .. 'mv:' .. C, U)
if applied and tonumber(applied) >= tonumber(ARGV[5]) then return 'ok' end
if action == 'join' and now - tonumber(ARGV[6]) > ${STEP_MS} then return 'stale' end
redis.call('HSET', T .. 'mv:' .. C, U, ARGV[5])
local function notify(kind, nodes, extra)
  for node in string.gmatch(nodes, '[^,]+') do
    redis.call('SPUBLISH', T .. 'to:' .. node, '{"k":"' .. kind .. '","u":' .. U .. ',"c":' .. C .. (extra or '') .. '}')
  end
end
if action == 'join' then
  redis.call('ZREM', T .. 'gone:' .. C, U)
  route_set(T, C, U, tonumber(ARGV[8]), ARGV[7])
  if redis.call('ZADD', T .. 'members:' .. C, U, U) == 0 then return 'ok' end
  local _, nodes = route_parse(redis.call('HGET', T .. 'routes:' .. C, U))
  route_count(T, C, nodes, 1)
  ${floorJoinStep("T", "C", "U", false)}
  notify('s', nodes, ',"o":' .. string.format('%d', floorLast))
  return 'added'
end
redis.call('ZADD', T .. 'gone:' .. C, now, U)
if redis.call('ZREM', T .. 'members:' .. C, U) == 1 then
  local _, nodes = route_parse(redis.call('HGET', T .. 'routes:' .. C, U))
  route_count(T, C, nodes, -1)
  ${floorLeaveStep("T", "C", "U", false)}
  if action == 'leave' then notify('x', nodes) end
end
redis.call('HDEL', T .. 'routes:' .. C, U)
return 'ok'`);

// The user step of a delete, in U's shard: answers false, or {time, channels...}. Its browsers stay
// online (the caller disconnects them); its channels' steps then take it out of each. The answer is
// also kept a while in deleted:U, for a caller whose wait for it timed out (membership-redo.ts).
const DELETE_USER = Lineage.guarded(`${NOW_MS}
local T, U = ARGV[1], ARGV[2]
if redis.call('HDEL', T .. 'users', U) == 0 then return false end
local channels = redis.call('HKEYS', T .. 'uch:' .. U)
redis.call('DEL', T .. 'uch:' .. U, T .. 'mver:' .. U)
redis.call('HDEL', T .. 'pver', U)
local held = redis.call('LLEN', T .. 'held:' .. U)
redis.call('DEL', T .. 'held:' .. U)
redis.call('DECRBY', T .. 'heldcount', held)
table.insert(channels, 1, now_ms())
for _, item in ipairs(channels) do redis.call('RPUSH', T .. 'deleted:' .. U, item) end
redis.call('PEXPIRE', T .. 'deleted:' .. U, ${TOMBSTONE_MS})
return channels`);

// The channel step of a delete, in C's shard: answers false or its former members. Each online
// member's node is told to unsubscribe its browsers. ARGV: tag, channel.
const DELETE_CHANNEL = Lineage.guarded(`${ROUTE_SET}
local T, C = ARGV[1], ARGV[2]
if redis.call('SREM', T .. 'channels', C) == 0 then return false end
local members = redis.call('ZRANGE', T .. 'members:' .. C, 0, -1)
for _, U in ipairs(members) do
  local _, nodes = route_parse(redis.call('HGET', T .. 'routes:' .. C, U))
  for node in string.gmatch(nodes, '[^,]+') do
    redis.call('SPUBLISH', T .. 'to:' .. node, '{"k":"x","u":' .. U .. ',"c":' .. C .. '}')
  end
end
redis.call('DEL', T .. 'members:' .. C, T .. 'mv:' .. C, T .. 'gone:' .. C, T .. 'routes:' .. C, T .. 'chnodes:' .. C)
return members`);

// The user steps of a channel's delete, in one shard for all its members there. ARGV: tag, channel, users...
const FORGET_CHANNEL = Lineage.guarded(`
for i = 3, #ARGV do redis.call('HDEL', ARGV[1] .. 'uch:' .. ARGV[i], ARGV[2]) end
return 1`);

// MEMBERS, MEMBER_COUNT, HOLD, TAKE_HELD, STORE and CLEAR are RedisState's, run in the key's shard.

const COUNTS = `return {redis.call('HLEN', KEYS[1]), redis.call('SCARD', KEYS[2]), tonumber(redis.call('GET', KEYS[3]) or '0')}`;

type MembershipStep = ["no-user"] | ["ok", number, number, string, number];

/**
 * The State on a Redis Cluster, sharded (see above). Every method answers asynchronously and fails
 * with BackendUnavailable while the shard it needs is away, and every change while that shard is not
 * on this node's lineage.
 */
export class RedisClusterState implements State {
  readonly #redis: RedisConnection;
  readonly #shards: ShardMap;
  readonly #lineage: Lineage;
  /** A join or leave is a user step then a channel step (see above). */
  readonly stepwise = true;
  /** Where this node creates its next user and channel: round robin from a random start. */
  #nextShard: number;
  /** Membership changes whose steps failed half way, finished in the background. */
  readonly #redo: MembershipRedo;

  private constructor(redis: RedisConnection, shards: ShardMap, node: string) {
    this.#redis = redis;
    this.#shards = shards;
    this.#lineage = new Lineage(redis, shards, node);
    this.#redo = new MembershipRedo({
      redis,
      shards,
      channelStep: async (step) => (await this.#runChannelStep(step)) as string,
      undoJoin: (step) => this.#undoJoin(step),
      goneVersion: GONE_VERSION,
    });
    this.#nextShard = Math.floor(Math.random() * shards.count);
  }

  /** Opens the state under `prefix` as `node`, creating the shards' generation and channel 1 the first time. */
  static async open(redis: RedisConnection, prefix: string, node = newSalt().slice(0, 12), shards = ShardMap.cluster(prefix)): Promise<RedisClusterState> {
    const state = new RedisClusterState(redis, shards, node);
    await state.#lineage.establishFirst();
    await state.#lineage.listen();
    const settled = await state.#lineage.settle(await state.#lineage.read());
    state.#lineage.adopt(settled.generation);
    return state;
  }

  get shards(): ShardMap {
    return this.#shards;
  }

  epoch(): string {
    return this.#lineage.generation;
  }

  get guard(): Lineage {
    return this.#lineage;
  }

  lineage(): Promise<Verdict> {
    return this.#lineage.read();
  }

  repair(found: Verdict, announce?: () => Promise<void>): Promise<Settled> {
    return this.#lineage.settle(found, announce);
  }

  adopt(generation: string): void {
    this.#lineage.adopt(generation);
  }

  onRefused(listener: () => void): void {
    this.#lineage.onRefused(listener);
  }

  async createUser(salt: string): Promise<number> {
    const shard = this.#pickShard();
    const tag = this.#shards.tags[shard]!;
    const home = this.#shards.of(GLOBAL_CHANNEL);
    const args = [salt, tag, this.#shards.count, shard, GLOBAL_CHANNEL];
    const [id, version, at] = (await this.#lineage.run(CREATE_USER, [], args, shard)) as [string, number, number];
    const user = Number(id);
    const step: ChannelStep = { home, channel: GLOBAL_CHANNEL, user, action: "join", version, at, nodes: "", pver: 0 };
    const applied = await this.#channelStep(step);
    if (applied === "no-channel" || applied === "stale") await this.#lineage.run(USER_UNDO, [], [tag, user, GLOBAL_CHANNEL, version], shard);
    return user;
  }

  async userSalt(user: number): Promise<string | undefined> {
    return ((await this.#redis.call("HGET", [this.#key(user, "users"), user])) as string | null) ?? undefined;
  }

  async deleteUser(user: number): Promise<boolean> {
    const shard = this.#shards.of(user);
    let reply: unknown;
    try {
      reply = await this.#lineage.run(DELETE_USER, [], [this.#shards.tags[shard]!, user], shard);
    } catch (error) {
      this.#redo.deleteFailed(user);
      throw error;
    }
    if (!Array.isArray(reply)) return false;
    const [at, ...channels] = reply as [number, ...string[]];
    await Promise.all(
      channels.map((text) => {
        const channel = Number(text);
        return this.#channelStep({ home: this.#shards.of(channel), channel, user, action: "gone", version: GONE_VERSION, at, nodes: "", pver: 0 });
      }),
    );
    return true;
  }

  async createChannel(): Promise<number> {
    const shard = this.#pickShard();
    return Number(await this.#lineage.run(CREATE_CHANNEL, [], [this.#shards.tags[shard]!, this.#shards.count, shard], shard));
  }

  async channelExists(channel: number): Promise<boolean> {
    return Number(await this.#redis.call("SISMEMBER", [this.#key(channel, "channels"), channel])) === 1;
  }

  async deleteChannel(channel: number): Promise<number[] | undefined> {
    const home = this.#shards.of(channel);
    const members = await this.#lineage.run(DELETE_CHANNEL, [], [this.#shards.tags[home]!, channel], home);
    if (!Array.isArray(members)) return undefined;
    const ids = members.map(Number);
    const byShard = Map.groupBy(ids, (user) => this.#shards.of(user));
    await Promise.all([...byShard].map(([shard, users]) => this.#lineage.run(FORGET_CHANNEL, [], [this.#shards.tags[shard]!, channel, ...users], shard)));
    return ids;
  }

  join(channel: number, user: number): Promise<JoinResult> {
    return this.#membership(channel, user, "join");
  }

  leave(channel: number, user: number): Promise<JoinResult> {
    return this.#membership(channel, user, "leave");
  }

  async channelsOf(user: number): Promise<number[]> {
    const channels = (await this.#redis.call("HKEYS", [this.#key(user, `uch:${user}`)])) as string[];
    return channels.map(Number).sort((a, b) => a - b);
  }

  async members(channel: number, after: number, limit: number): Promise<number[] | undefined> {
    const keys = [this.#key(channel, "channels"), this.#key(channel, `members:${channel}`)];
    const page = await this.#redis.script(MEMBERS, keys, [channel, after, Number.isFinite(limit) ? limit : -1]);
    return Array.isArray(page) ? page.map(Number) : undefined;
  }

  async memberCount(channel: number): Promise<number | undefined> {
    const count = await this.#redis.script(MEMBER_COUNT, [this.#key(channel, "channels"), this.#key(channel, `members:${channel}`)], [channel]);
    return typeof count === "number" ? count : undefined;
  }

  /** The sum over every shard: one script per shard, all at once. */
  async counts(): Promise<StateCounts> {
    const perShard = await Promise.all(
      this.#shards.tags.map((tag) => this.#redis.script(COUNTS, [`${tag}users`, `${tag}channels`, `${tag}heldcount`], []) as Promise<number[]>),
    );
    const total = { users: 0, channels: 0, held: 0 };
    for (const [users, channels, held] of perShard) {
      total.users += Number(users);
      total.channels += Number(channels);
      total.held += Number(held);
    }
    return total;
  }

  async hold(user: number, message: string, limit: number): Promise<number> {
    const keys = [this.#key(user, "users"), this.#key(user, `held:${user}`), this.#key(user, "heldcount")];
    return Number(await this.#lineage.run(HOLD, keys, [user, message, limit], this.#shards.of(user)));
  }

  async takeHeld(user: number): Promise<string[]> {
    const keys = [this.#key(user, `held:${user}`), this.#key(user, "heldcount")];
    const held = ((await this.#lineage.run(TAKE_HELD, keys, [], this.#shards.of(user))) ?? []) as string[];
    return inOffsetOrder(held);
  }

  async store(key: string, value: string): Promise<void> {
    const shard = this.#kvShard(key);
    await this.#lineage.run(STORE, [this.#shards.key(shard, "kv")], [key, value], shard);
  }

  async clear(key: string): Promise<void> {
    const shard = this.#kvShard(key);
    await this.#lineage.run(CLEAR, [this.#shards.key(shard, "kv")], [key], shard);
  }

  async retrieve(key: string): Promise<string> {
    return ((await this.#redis.call("HGET", [this.#shards.key(this.#kvShard(key), "kv"), key])) as string | null) ?? "";
  }

  async healthy(): Promise<boolean> {
    const pong = (await this.#redis.call("PING", [])) === "PONG";
    await this.#redis.probeRoom(this.#shards.key(0, "roomprobe")).catch(() => undefined);
    return pong && this.#redis.healthy;
  }

  problem(): string | undefined {
    return this.#redis.full ? `Redis is full: ${BACKEND_FULL.replace("backend full: ", "")}, raise maxmemory or free memory` : undefined;
  }

  async retire(): Promise<void> {
    await this.#lineage.retire();
  }

  close(): void {
    this.#redo.close();
  }

  async #membership(channel: number, user: number, action: "join" | "leave"): Promise<JoinResult> {
    const shard = this.#shards.of(user);
    const tag = this.#shards.tags[shard]!;
    let step: MembershipStep;
    try {
      step = (await this.#lineage.run(USER_MEMBERSHIP, [], [tag, user, channel, action], shard)) as MembershipStep;
    } catch (error) {
      this.#redo.userStepFailed(user, channel);
      throw error;
    }
    if (step[0] === "no-user") return (await this.channelExists(channel)) ? "no-user" : "no-channel";
    const [, version, at, nodes, pver] = step;
    const applied = await this.#channelStep({ home: this.#shards.of(channel), channel, user, action, version, at, nodes, pver });
    if (applied === "added" || applied === "ok") return applied;
    if (action === "join") await this.#lineage.run(USER_UNDO, [], [tag, user, channel, version], shard);
    if (applied === "no-channel") return "no-channel";
    throw new BackendUnavailable("a membership change took longer than a minute between its steps: not applied, try again");
  }

  /**
   * Runs a channel step; when it fails its outcome is unknown (it may still run late, or never), so it
   * is finished in the background (membership-redo.ts) before the failure is passed on.
   */
  async #channelStep(step: ChannelStep): Promise<string> {
    try {
      return (await this.#runChannelStep(step)) as string;
    } catch (error) {
      this.#redo.channelStepFailed(step);
      throw error;
    }
  }

  async #undoJoin({ user, channel, version }: ChannelStep): Promise<void> {
    const shard = this.#shards.of(user);
    await this.#lineage.run(USER_UNDO, [], [this.#shards.tags[shard]!, user, channel, version], shard);
  }

  #runChannelStep({ home, channel, user, action, version, at, nodes, pver }: ChannelStep): Promise<unknown> {
    return this.#lineage.run(CHANNEL_MEMBERSHIP, [], [this.#shards.tags[home]!, channel, user, action, version, at, nodes, pver], home);
  }

  #pickShard(): number {
    this.#nextShard = (this.#nextShard + 1) % this.#shards.count;
    return this.#nextShard;
  }

  /** The key `name` in the shard of a user or channel ID. */
  #key(id: number, name: string): string {
    return this.#shards.key(this.#shards.of(id), name);
  }

  #kvShard(key: string): number {
    return keySlot(key) % this.#shards.count;
  }
}
