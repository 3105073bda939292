import type { RedisLink } from "../state/redis-link.ts";
import type { Presence, PresenceLocal } from "./presence-kind.ts";
import { parseNodeStats, PresenceBook } from "./presence-book.ts";
import { ONLINE_NODES, ROUTE_MOVE } from "../state/route-redis.ts";
import { SESSION_CLAIM, SESSIONS_DROP_DEAD } from "./session-limit.ts";

// online: hash user → node ID (or node IDs, with --sessions above 1: route-redis.ts); node:ID: the node's lease, renewed every third of its length;
// nodestats:ID: the node's counters, for cluster-wide [stats]. A user whose node's lease has lapsed
// counts as offline, so a node that dies holds its users for one lease at most. Every change of the
// online hash moves the user's channel counts with it (route_move, route-redis.ts).

// A user whose node's lease lapsed counts as offline (a whisper is held, as [online] answered), but a
// question changes nothing: the entry and its routes stay for the sweep's grace (SWEEP), so a node
// that was only paused still gets its channels' shouts, and a login elsewhere moves them (CLAIM).
// With --sessions above 1 the user is online while any of its nodes holds a lease.
export const IS_ONLINE = `${ONLINE_NODES}
for _, node in ipairs(online_nodes(redis.call('HGET', KEYS[1], ARGV[1]))) do
  if redis.call('EXISTS', ARGV[2] .. 'node:' .. node) == 1 then return 1 end
end
return 0`;

// A browser of the user on another live node is closed (4002): that node is told on its own channel,
// in this step, so nothing about the user published after the claim reaches it first. ARGV[4]: that
// message.
const CLAIM = `${ROUTE_MOVE}
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
route_move(ARGV[3], ARGV[1], previous, ARGV[2])
if previous and previous ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. 'node:' .. previous) == 1 then
  redis.call('PUBLISH', ARGV[3] .. 'to:' .. previous, ARGV[4])
  return 1
end
return 0`;

// With --sessions above 1: the user is online on this node too, and its browsers elsewhere stay.
// Answers 1 when the user was online on another live node already.
const CLAIM_ALSO = `${ROUTE_MOVE}${ONLINE_NODES}
local nodes = online_nodes(redis.call('HGET', KEYS[1], ARGV[1]))
local here = false
local elsewhere = 0
for _, node in ipairs(nodes) do
  if node == ARGV[2] then here = true
  elseif redis.call('EXISTS', ARGV[3] .. 'node:' .. node) == 1 then elsewhere = 1 end
end
if not here then
  table.insert(nodes, ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[1], online_value(nodes))
  route_move(ARGV[3], ARGV[1], false, ARGV[2])
end
return elsewhere`;

// CLAIM_ALSO with the limit counted cluster-wide (session-limit.ts), in the same step: ARGV[4] the
// browser's member in sess:U, ARGV[5] the limit, ARGV[6] 'reject' or 'replace'. Answers -1, claiming
// nothing, when the user has the limit already under reject.
const CLAIM_LIMITED = `${SESSION_CLAIM}
if not session_claim(ARGV[3], ARGV[1], ARGV[4], tonumber(ARGV[5]), ARGV[6] == 'reject') then return -1 end
${CLAIM_ALSO}`;

// The user is no longer online on this node (ARGV[2]); it may still be on others (--sessions).
const RELEASE = `${ROUTE_MOVE}${ONLINE_NODES}
local nodes = online_nodes(redis.call('HGET', KEYS[1], ARGV[1]))
local kept = {}
for _, node in ipairs(nodes) do if node ~= ARGV[2] then table.insert(kept, node) end end
if #kept < #nodes then
  local value = online_value(kept)
  if value then redis.call('HSET', KEYS[1], ARGV[1], value) else redis.call('HDEL', KEYS[1], ARGV[1]) end
  route_move(ARGV[3], ARGV[1], ARGV[2], false)
end
local elsewhere = 0
for _, node in ipairs(kept) do
  if redis.call('EXISTS', ARGV[3] .. 'node:' .. node) == 1 then elsewhere = 1 end
end
return elsewhere`;

// A dead node leaves present:U (presence-events.ts) without an event, as --sessions 1 raises none for it.
// Records this node's renewal (KEYS[3], nodeseen: node → until when, on Redis's clock, it counts as
// alive though its lease lapsed: ARGV[3] ms from now) and releases the users of nodes past theirs, so
// the channel counts never keep routing to a node that died. The grace is several leases long: a live
// node whose lease only lapsed (a pause, a Redis outage) keeps its routes and misses no shout; one
// paused past it claims its users again when it comes back (#renew), which counts them again.
const SWEEP = `${ROUTE_MOVE}${ONLINE_NODES}${SESSIONS_DROP_DEAD}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[3], ARGV[2], string.format('%.0f', now + tonumber(ARGV[3])))
local dead = {}
local any = false
local seen = redis.call('HGETALL', KEYS[3])
for i = 1, #seen, 2 do
  if tonumber(seen[i + 1]) < now and redis.call('EXISTS', ARGV[1] .. 'node:' .. seen[i]) == 0 then dead[seen[i]] = true; any = true end
end
if not any then return 0 end
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local nodes = online_nodes(all[i + 1])
  local kept = {}
  for _, node in ipairs(nodes) do
    if dead[node] then
      route_move(ARGV[1], all[i], node, false)
      redis.call('SREM', ARGV[1] .. 'present:' .. all[i], node)
    else table.insert(kept, node) end
  end
  if #kept < #nodes then
    local value = online_value(kept)
    if value then redis.call('HSET', KEYS[1], all[i], value) else redis.call('HDEL', KEYS[1], all[i]) end
    sessions_drop_dead(ARGV[1], all[i], dead)
    n = n + 1
  end
end
for node in pairs(dead) do
  redis.call('HDEL', KEYS[3], node)
  redis.call('SREM', KEYS[2], node)
end
return n`;

/** How many leases a node whose lease lapsed keeps its users' routes: see SWEEP. */
export const SWEEP_GRACE_LEASES = 5;

// Lua: `send_held(p, user, node)` sends the user's held whispers to its browsers on `node`, in offset
// order, on that node's channel (so before anything published after this step), and empties the queue.
export const sendHeld = (publish: string) => `
local function offset_of(entry) return tonumber(string.sub(entry, 1, string.find(entry, '!', 1, true) - 1)) end
local function send_held(p, user, node)
  local key = p .. 'held:' .. user
  local held = redis.call('LRANGE', key, 0, -1)
  if #held == 0 then return end
  redis.call('DEL', key)
  redis.call('DECRBY', p .. 'heldcount', #held)
  table.sort(held, function(a, b) return offset_of(a) < offset_of(b) end)
  for _, entry in ipairs(held) do
    local bang = string.find(entry, '!', 1, true)
    local text = '{"k":"u","u":' .. user .. ',"m":' .. cjson.encode(string.sub(entry, bang + 1)) .. ',"o":' .. string.sub(entry, 1, bang - 1) .. '}'
    redis.call('${publish}', p .. 'to:' .. node, text)
  end
end`;
const SEND_HELD = sendHeld("PUBLISH");

// Only users that still exist: after Redis lost the data, a browser of a user that is gone must not
// make that ID look online (a whisper to it would be delivered, not refused). ARGV[2]: the prefix.
// A user that another live node holds now logged in there while this node's lease had lapsed: that
// newer login stands, and the user is returned so that this node closes its stale browser (4002).
// Whispers held while the lease had lapsed (the user counted as offline) go to the user's browser here,
// in offset order and on this node's channel in this step, so before any whisper published after it.
const RECLAIM = `${ROUTE_MOVE}${SEND_HELD}
local lost = {}
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
    local previous = redis.call('HGET', KEYS[1], ARGV[i])
    if previous ~= ARGV[1] and previous and redis.call('EXISTS', ARGV[2] .. 'node:' .. previous) == 1 then
      table.insert(lost, ARGV[i])
    else
      if previous ~= ARGV[1] then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
        route_move(ARGV[2], ARGV[i], previous, ARGV[1])
      end
      send_held(ARGV[2], ARGV[i], ARGV[1])
    end
  end
end
return lost`;

// RECLAIM with --sessions above 1: this node joins the user's nodes, and the others stay. Whispers were
// held only while none of the user's nodes held a lease: they go to the browsers here, as in RECLAIM.
// The node is among those holding an admitted browser again (present:U, presence-events.ts), without
// an event: the sweep took it out without one.
const RECLAIM_ALSO = `${ROUTE_MOVE}${ONLINE_NODES}${SEND_HELD}
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
    local nodes = online_nodes(redis.call('HGET', KEYS[1], ARGV[i]))
    local here = false
    for _, node in ipairs(nodes) do if node == ARGV[1] then here = true end end
    if not here then
      table.insert(nodes, ARGV[1])
      redis.call('HSET', KEYS[1], ARGV[i], online_value(nodes))
      route_move(ARGV[2], ARGV[i], false, ARGV[1])
    end
    redis.call('SADD', ARGV[2] .. 'present:' .. ARGV[i], ARGV[1])
    send_held(ARGV[2], ARGV[i], ARGV[1])
  end
end
return 1`;

// The users Redis says are online on this node (ARGV[1]): after Redis came back (restarted, restored
// from an older snapshot) it may name users whose browser has long left, who would look online forever.
export const MINE = `${ONLINE_NODES}
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 2, #all, 2 do
  for _, node in ipairs(online_nodes(all[i])) do if node == ARGV[1] then table.insert(out, all[i - 1]) end end
end
return out`;

/** Users re-claimed per script call: one call never blocks Redis for long. */
export const RECLAIM_BATCH = 1_000;

// A user counts once, however many nodes it is online on (--sessions).
export const COUNT_ONLINE = `${ONLINE_NODES}
local alive = {}
local function live(node)
  if alive[node] == nil then alive[node] = redis.call('EXISTS', ARGV[1] .. 'node:' .. node) end
  return alive[node] == 1
end
local function any_live(value)
  for _, node in ipairs(online_nodes(value)) do if live(node) then return true end end
  return false
end
local n = 0
if KEYS[2] then
  for _, user in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if any_live(redis.call('HGET', KEYS[1], user)) then n = n + 1 end
  end
else
  local all = redis.call('HGETALL', KEYS[1])
  for i = 2, #all, 2 do if any_live(all[i]) then n = n + 1 end end
end
return n`;

// A node without a lease is left in `nodes` for the sweep to release its users.
export const NODE_STATS = `
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. node) == 1 then
    table.insert(out, node)
    table.insert(out, redis.call('HGETALL', ARGV[1] .. 'nodestats:' .. node))
  end
end
return out`;

/** Who is online across the cluster, with each node holding a lease on its own users. */
export class RedisPresence implements Presence {
  #timer: Timer | undefined;
  #lapsed = false;
  /** Whether this node has held a lease yet: before its first, no lease is no lapse. */
  #renewed = false;
  readonly #book = new PresenceBook();

  constructor(
    private readonly redis: RedisLink,
    private readonly prefix: string,
    readonly nodeId: string,
    private readonly leaseMs: number,
    /** This node's users and counters, re-asserted after an outage and published with each renewal. */
    private readonly local: PresenceLocal,
    /**
     * Checked with every renewal: false when Redis had lost the data (and it was re-established
     * meanwhile), so the users this node had claimed are claimed again only if they still exist.
     */
    private readonly sameData: () => Promise<boolean>,
    /** --sessions above 1: a user may be online on several nodes at once. */
    private readonly several = false,
  ) {}

  async start(): Promise<void> {
    // What Redis holds may have changed while the link was down (a restart, a restore from an older
    // snapshot): the next renewal makes it say again exactly which users are online here.
    this.redis.onReconnect(() => (this.#lapsed = true));
    await this.#renew();
    this.#timer = setInterval(() => void this.#renew().catch(() => (this.#lapsed = true)), Math.max(100, this.leaseMs / 3));
  }

  /** Calls `listener` after this node claimed its users again (a lapse or an outage): they may have missed joins. */
  onReclaimed(listener: () => void): void {
    this.#book.onReclaimed(listener);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.redis.call("DEL", [this.#k(`node:${this.nodeId}`), this.#k(`nodestats:${this.nodeId}`)]).catch(() => undefined);
    // Stopped, not lapsed: the next sweep may release what is left of this node's users at once.
    await this.redis.call("HDEL", [this.#k("nodeseen"), this.nodeId]).catch(() => undefined);
  }

  async isOnline(user: number): Promise<boolean> {
    return (await this.redis.script(IS_ONLINE, [this.#k("online")], [user, this.prefix])) === 1;
  }

  /**
   * Marks the user online on this node; when a browser of theirs was online on another live node,
   * publishes `replaced` to that node (in the same step) and answers true.
   */
  async claim(user: number, replaced: string): Promise<boolean> {
    this.#book.claiming(user);
    return (await this.redis.script(CLAIM, [this.#k("online")], [user, this.nodeId, this.prefix, replaced])) === 1;
  }

  /**
   * With --sessions above 1: marks the user online on this node too, leaving its browsers on other
   * nodes be. Answers true when the user was online on another live node already.
   */
  async claimAlso(user: number): Promise<boolean> {
    this.#book.claiming(user);
    return (await this.redis.script(CLAIM_ALSO, [this.#k("online")], [user, this.nodeId, this.prefix])) === 1;
  }

  /**
   * claimAlso with --sessions counted cluster-wide (session-limit.ts): adds the browser's `member` to
   * the user's sessions in the same step, closing the oldest past `limit`, or refusing under `reject`.
   * Answers undefined when refused (nothing claimed), else whether the user was online elsewhere.
   */
  async claimLimited(user: number, member: string, limit: number, reject: boolean): Promise<boolean | undefined> {
    const args = [user, this.nodeId, this.prefix, member, limit, reject ? "reject" : "replace"];
    const answer = await this.redis.script(CLAIM_LIMITED, [this.#k("online")], args);
    if (answer === -1) return undefined;
    this.#book.claiming(user);
    return answer === 1;
  }

  /** The user is no longer online here; answers whether it is still online on another live node (--sessions). */
  async release(user: number): Promise<boolean> {
    this.#book.releasing(user);
    try {
      return (await this.redis.script(RELEASE, [this.#k("online")], [user, this.nodeId, this.prefix])) === 1;
    } catch (error) {
      // Unless the user was claimed here again meanwhile: that claim was sent after this release.
      this.#book.releaseFailed(user);
      throw error;
    }
  }

  async onlineCount(): Promise<number> {
    return Number(await this.redis.script(COUNT_ONLINE, [this.#k("online")], [this.prefix]));
  }

  async onlineIn(channel: number): Promise<number> {
    return Number(await this.redis.script(COUNT_ONLINE, [this.#k("online"), this.#k(`members:${channel}`)], [this.prefix]));
  }

  /** Every live node's counters, this node's taken fresh. */
  async nodeStats(): Promise<Record<string, number>[]> {
    const raw = (await this.redis.script(NODE_STATS, [this.#k("nodes")], [this.prefix])) as (string | string[])[];
    return parseNodeStats(raw, this.nodeId, this.local.stats());
  }

  async #renew(): Promise<void> {
    const same = await this.sameData();
    const lease = this.#k(`node:${this.nodeId}`);
    const stats = this.local.stats();
    const fields = Object.entries(stats).flat();
    // No lease before this renewal (a pause longer than the lease): other nodes may have swept our users.
    const held = await this.redis.call("SET", [lease, "1", "PX", this.leaseMs, "GET"]);
    if (held === null && this.#renewed) this.#lapsed = true;
    this.#renewed = true;
    await this.redis.call("SADD", [this.#k("nodes"), this.nodeId]);
    const sweepKeys = [this.#k("online"), this.#k("nodes"), this.#k("nodeseen")];
    await this.redis.script(SWEEP, sweepKeys, [this.prefix, this.nodeId, SWEEP_GRACE_LEASES * this.leaseMs]);
    if (fields.length > 0) {
      await this.redis.call("HSET", [this.#k(`nodestats:${this.nodeId}`), ...fields]);
      await this.redis.call("PEXPIRE", [this.#k(`nodestats:${this.nodeId}`), this.leaseMs]);
    }
    await this.#book.releaseAgain((user) => this.release(user));
    if (this.#lapsed || !same) {
      // Other nodes may have forgotten our users while our lease had lapsed, or Redis lost them:
      // claim those that still exist again, and release those Redis says are here but are not.
      await this.#prune();
      await this.#reclaim([...this.local.users()]);
      this.#lapsed = false;
      // Joins and leaves of our users while they were not ours in Redis went nowhere.
      this.#book.reclaimed();
    }
  }

  async #prune(): Promise<void> {
    const mine = (await this.redis.script(MINE, [this.#k("online")], [this.nodeId])) as string[];
    for (const user of mine.map(Number)) {
      // Checked just before each: a claim made since is sent after this release, so it stands.
      if (this.#book.isClaimed(user)) continue;
      await this.redis.script(RELEASE, [this.#k("online")], [user, this.nodeId, this.prefix]);
    }
  }

  async #reclaim(users: number[]): Promise<void> {
    const keys = [this.#k("online"), this.#k("users")];
    for (let i = 0; i < users.length; i += RECLAIM_BATCH) {
      const script = this.several ? RECLAIM_ALSO : RECLAIM;
      const lost = await this.redis.script(script, keys, [this.nodeId, this.prefix, ...users.slice(i, i + RECLAIM_BATCH)]);
      if (Array.isArray(lost)) for (const user of lost) this.local.replaced(Number(user));
    }
  }

  #k(name: string): string {
    return this.prefix + name;
  }
}
