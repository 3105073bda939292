import { inOffsetOrder } from "../core/catch-up.ts";
import { newSalt } from "../core/secret.ts";
import { Lineage, type Settled, type Verdict } from "./lineage.ts";
import { BACKEND_FULL, type RedisLink } from "./redis-link.ts";
import { ShardMap } from "./shard-map.ts";
import { floorJoinStep, floorLeaveStep } from "./replay-redis.ts";
import { ONLINE_NODES, ROUTE_COUNT } from "./route-redis.ts";
import { GLOBAL_CHANNEL, type JoinResult, type State, type StateCounts } from "./state.ts";

// Every call that touches more than one key is one Lua script, so it is atomic for every node.
// Keys (under the prefix): users (hash id → salt), channels (set), members:C (zset, score = id),
// uch:U (set of U's channels), chnodes:C (route-redis.ts), held:U (list), heldcount, nextuser, nextchannel, kv (hash), init, and
// the lineage's keys (lineage.ts). Every changing script runs guarded: refused when Redis is not on
// this node's lineage (it lost the data or went back in time), before it changes anything.
// The join and leave script also keeps the replay log's floor of the membership (floorJoinStep in
// replay-redis.ts), in the same atomic step, so no node ever sees a new member without its floor.

// The ID rule of id-clock.ts, on Redis's clock so every node follows one clock: max(last + 1, now in
// microseconds). Lua prints numbers this large in exponent form, so the ID is formatted once, here.
const NEXT_ID = `
local function nextId(counter)
  local t = redis.call('TIME')
  local last = tonumber(redis.call('GET', counter) or '0')
  local id = string.format('%.0f', math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2])))
  redis.call('SET', counter, id)
  return id
end`;

const CREATE_USER = Lineage.guarded(`${NEXT_ID}
local id = nextId(KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then
  redis.call('ZADD', ARGV[3] .. 'members:' .. ARGV[2], id, id)
  redis.call('SADD', ARGV[3] .. 'uch:' .. id, ARGV[2])
end
return id`);

const CREATE_CHANNEL = Lineage.guarded(`${NEXT_ID}
local id = nextId(KEYS[1])
redis.call('SADD', KEYS[2], id)
return id`);

// The user's browser stays online (the caller disconnects it) but is in no channel any more: its
// node's counts of them go (route-redis.ts).
const DELETE_USER = Lineage.guarded(`${ROUTE_COUNT}${ONLINE_NODES}
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local nodes = online_nodes(redis.call('HGET', KEYS[3], ARGV[1]))
for _, ch in ipairs(redis.call('SMEMBERS', ARGV[2] .. 'uch:' .. ARGV[1])) do
  redis.call('ZREM', ARGV[2] .. 'members:' .. ch, ARGV[1])
  for _, node in ipairs(nodes) do route_count(ARGV[2], ch, node, -1) end
end
redis.call('DEL', ARGV[2] .. 'uch:' .. ARGV[1])
local held = redis.call('LLEN', ARGV[2] .. 'held:' .. ARGV[1])
redis.call('DEL', ARGV[2] .. 'held:' .. ARGV[1])
redis.call('DECRBY', KEYS[2], held)
return 1`);

// Each online member's node is told to unsubscribe its browser (its bus channel), and the channel's
// node counts go with it (route-redis.ts).
const DELETE_CHANNEL = Lineage.guarded(`${ONLINE_NODES}
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return false end
local members = redis.call('ZRANGE', ARGV[2] .. 'members:' .. ARGV[1], 0, -1)
for _, u in ipairs(members) do
  redis.call('SREM', ARGV[2] .. 'uch:' .. u, ARGV[1])
  for _, node in ipairs(online_nodes(redis.call('HGET', KEYS[2], u))) do
    redis.call('PUBLISH', ARGV[2] .. 'to:' .. node, '{"k":"x","u":' .. u .. ',"c":' .. ARGV[1] .. '}')
  end
end
redis.call('DEL', ARGV[2] .. 'members:' .. ARGV[1], ARGV[2] .. 'chnodes:' .. ARGV[1])
return members`);

// A join or leave of an online user also changes its node's count in chnodes:C and tells that node
// (its bus channel, route-redis.ts) to subscribe or unsubscribe the browser, in this same step: a
// shout numbered after this script reaches the browser, and [join] is one Redis call. A join that
// added the member says where it starts in the channel (`o`, its floor: webtalk.v2's #at).
const MEMBERSHIP = Lineage.guarded(`${ROUTE_COUNT}${ONLINE_NODES}
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 'no-channel' end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 'no-user' end
local nodes = online_nodes(redis.call('HGET', KEYS[3], ARGV[2]))
local result = 'ok'
local joinedAt = ''
if ARGV[3] == 'join' then
  if redis.call('SADD', ARGV[4] .. 'uch:' .. ARGV[2], ARGV[1]) == 1 then
    for _, node in ipairs(nodes) do route_count(ARGV[4], ARGV[1], node, 1) end
  end
  if redis.call('ZADD', ARGV[4] .. 'members:' .. ARGV[1], ARGV[2], ARGV[2]) == 1 then
    ${floorJoinStep("ARGV[4]", "ARGV[1]", "ARGV[2]")}
    joinedAt = ',"o":' .. string.format('%d', floorLast)
    result = 'added'
  end
else
  redis.call('ZREM', ARGV[4] .. 'members:' .. ARGV[1], ARGV[2])
  if redis.call('SREM', ARGV[4] .. 'uch:' .. ARGV[2], ARGV[1]) == 1 then
    for _, node in ipairs(nodes) do route_count(ARGV[4], ARGV[1], node, -1) end
  end
  ${floorLeaveStep("ARGV[4]", "ARGV[1]", "ARGV[2]")}
end
local kind = ARGV[3] == 'join' and 's' or 'x'
for _, node in ipairs(nodes) do
  redis.call('PUBLISH', ARGV[4] .. 'to:' .. node, '{"k":"' .. kind .. '","u":' .. ARGV[2] .. ',"c":' .. ARGV[1] .. joinedAt .. '}')
end
return result`);

export const MEMBERS = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[2], '+inf', 'LIMIT', 0, ARGV[3])`;

export const MEMBER_COUNT = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('ZCARD', KEYS[2])`;

export const HOLD = Lineage.guarded(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local len = redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[3])
local excess = len - tonumber(ARGV[3])
if excess > 0 then
  redis.call('LTRIM', KEYS[2], excess, -1)
  redis.call('DECRBY', KEYS[3], excess)
  return excess
end
return 0`);

export const TAKE_HELD = Lineage.guarded(`
local held = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
redis.call('DECRBY', KEYS[2], #held)
return held`);

export const STORE = Lineage.guarded(`redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])`);
export const CLEAR = Lineage.guarded(`redis.call('HDEL', KEYS[1], ARGV[1])`);

/**
 * State in Redis, shared by every node of a cluster and surviving their restarts. Every method
 * answers asynchronously and fails with BackendUnavailable while Redis is away, and every change
 * while Redis is not on this node's lineage (see `lineage`).
 */
export class RedisState implements State {
  readonly #redis: RedisLink;
  readonly #p: string;
  readonly #lineage: Lineage;

  private constructor(redis: RedisLink, prefix: string, node: string) {
    this.#redis = redis;
    this.#p = prefix;
    this.#lineage = new Lineage(redis, ShardMap.single(prefix), node);
  }

  /**
   * Opens the state under `prefix` as `node` (the name its changes are marked with), creating channel 1
   * and the generation the first time this prefix is used, or finishing a wipe a node left half done.
   */
  static async open(redis: RedisLink, prefix: string, node = newSalt().slice(0, 12)): Promise<RedisState> {
    const state = new RedisState(redis, prefix, node);
    await state.#establish();
    await state.#lineage.listen();
    const settled = await state.#lineage.settle(await state.#lineage.read());
    state.#lineage.adopt(settled.generation);
    return state;
  }

  /** The generation of the data this node works in: it changes only if Redis lost it or went back in time. */
  epoch(): string {
    return this.#lineage.generation;
  }

  /** The guard every changing script runs behind, for the cluster's numbered sends too. */
  get guard(): Lineage {
    return this.#lineage;
  }

  /** What Redis holds compared with what this node knows: "same" while it can be trusted. */
  lineage(): Promise<Verdict> {
    return this.#lineage.read();
  }

  /** After a verdict other than "same": discards the data once cluster-wide and answers the generation to adopt. */
  repair(found: Verdict, announce?: () => Promise<void>): Promise<Settled> {
    return this.#lineage.settle(found, announce);
  }

  /** From now on this node works in `generation` (what `repair` answered). */
  adopt(generation: string): void {
    this.#lineage.adopt(generation);
  }

  /** Calls `listener` whenever a change was refused because Redis is not on this node's lineage. */
  onRefused(listener: () => void): void {
    this.#lineage.onRefused(listener);
  }

  async createUser(salt: string): Promise<number> {
    const keys = [this.#k("nextuser"), this.#k("users"), this.#k("channels")];
    return Number(await this.#lineage.run(CREATE_USER, keys, [salt, GLOBAL_CHANNEL, this.#p]));
  }

  async userSalt(user: number): Promise<string | undefined> {
    return ((await this.#redis.call("HGET", [this.#k("users"), user])) as string | null) ?? undefined;
  }

  async deleteUser(user: number): Promise<boolean> {
    return (await this.#lineage.run(DELETE_USER, [this.#k("users"), this.#k("heldcount"), this.#k("online")], [user, this.#p])) === 1;
  }

  async createChannel(): Promise<number> {
    return Number(await this.#lineage.run(CREATE_CHANNEL, [this.#k("nextchannel"), this.#k("channels")], []));
  }

  async channelExists(channel: number): Promise<boolean> {
    return Number(await this.#redis.call("SISMEMBER", [this.#k("channels"), channel])) === 1;
  }

  async deleteChannel(channel: number): Promise<number[] | undefined> {
    const members = await this.#lineage.run(DELETE_CHANNEL, [this.#k("channels"), this.#k("online")], [channel, this.#p]);
    return Array.isArray(members) ? members.map(Number) : undefined;
  }

  join(channel: number, user: number): Promise<JoinResult> {
    return this.#membership(channel, user, "join");
  }

  leave(channel: number, user: number): Promise<JoinResult> {
    return this.#membership(channel, user, "leave");
  }

  async channelsOf(user: number): Promise<number[]> {
    const channels = (await this.#redis.call("SMEMBERS", [this.#k(`uch:${user}`)])) as string[];
    return channels.map(Number).sort((a, b) => a - b);
  }

  async members(channel: number, after: number, limit: number): Promise<number[] | undefined> {
    const keys = [this.#k("channels"), this.#k(`members:${channel}`)];
    // Redis reads a negative LIMIT count as "no limit".
    const page = await this.#redis.script(MEMBERS, keys, [channel, after, Number.isFinite(limit) ? limit : -1]);
    return Array.isArray(page) ? page.map(Number) : undefined;
  }

  async memberCount(channel: number): Promise<number | undefined> {
    const count = await this.#redis.script(MEMBER_COUNT, [this.#k("channels"), this.#k(`members:${channel}`)], [channel]);
    return typeof count === "number" ? count : undefined;
  }

  async counts(): Promise<StateCounts> {
    const [users, channels, held] = await Promise.all([
      this.#redis.call("HLEN", [this.#k("users")]),
      this.#redis.call("SCARD", [this.#k("channels")]),
      this.#redis.call("GET", [this.#k("heldcount")]),
    ]);
    return { users: Number(users), channels: Number(channels), held: Number(held ?? 0) };
  }

  async hold(user: number, message: string, limit: number): Promise<number> {
    const keys = [this.#k("users"), this.#k(`held:${user}`), this.#k("heldcount")];
    return Number(await this.#lineage.run(HOLD, keys, [user, message, limit]));
  }

  async takeHeld(user: number): Promise<string[]> {
    const held = ((await this.#lineage.run(TAKE_HELD, [this.#k(`held:${user}`), this.#k("heldcount")], [])) ?? []) as string[];
    // Each node stores the holds of its own whispers, so two nodes' holds land in either order.
    return inOffsetOrder(held);
  }

  async store(key: string, value: string): Promise<void> {
    await this.#lineage.run(STORE, [this.#k("kv")], [key, value]);
  }

  async clear(key: string): Promise<void> {
    await this.#lineage.run(CLEAR, [this.#k("kv")], [key]);
  }

  async retrieve(key: string): Promise<string> {
    return ((await this.#redis.call("HGET", [this.#k("kv"), key])) as string | null) ?? "";
  }

  /**
   * A PING round trip: /healthz answers 503 while it fails (the link fails fast while Redis is away).
   * While Redis is full, a small write tells whether it has room again (`problem` says until then).
   */
  async healthy(): Promise<boolean> {
    const pong = (await this.#redis.call("PING", [])) === "PONG";
    await this.#redis.probeRoom(this.#k("roomprobe")).catch(() => undefined);
    return pong;
  }

  /** While Redis refuses writes for want of memory: /healthz and /readyz answer 503 naming it. */
  problem(): string | undefined {
    return this.#redis.full ? `Redis is full: ${BACKEND_FULL.replace("backend full: ", "")}, raise maxmemory or free memory` : undefined;
  }

  /** Forgets this node's mark in Redis; the link is shared with the cluster parts, and the composition root closes it. */
  async retire(): Promise<void> {
    await this.#lineage.retire();
  }

  close(): void {}

  /** Creates the data the first time this prefix is used (a generation and channel 1). */
  async #establish(): Promise<void> {
    await this.#lineage.establishFirst();
  }

  async #membership(channel: number, user: number, action: "join" | "leave"): Promise<JoinResult> {
    const keys = [this.#k("channels"), this.#k("users"), this.#k("online")];
    return (await this.#lineage.run(MEMBERSHIP, keys, [channel, user, action, this.#p])) as JoinResult;
  }

  #k(name: string): string {
    return this.#p + name;
  }
}
