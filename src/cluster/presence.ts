import type { RedisLink } from "../state/redis-link.ts";

// online: hash user → node ID; node:ID: the node's lease, renewed every third of its length;
// nodestats:ID: the node's counters, for cluster-wide [stats]. A user whose node's lease has lapsed
// counts as offline, so a node that dies holds its users for one lease at most.

const IS_ONLINE = `
local node = redis.call('HGET', KEYS[1], ARGV[1])
if not node then return 0 end
if redis.call('EXISTS', ARGV[2] .. 'node:' .. node) == 1 then return 1 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 0`;

const CLAIM = `
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if previous and previous ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. 'node:' .. previous) == 1 then return 1 end
return 0`;

const RELEASE = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1`;

// Only users that still exist: after Redis lost the data, a browser of a user that is gone must not
// make that ID look online (a whisper to it would be delivered, not refused).
const RECLAIM = `
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
end
return 1`;

// The users Redis says are online on this node (ARGV[1]): after Redis came back (restarted, restored
// from an older snapshot) it may name users whose browser has long left, who would look online forever.
const MINE = `
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 2, #all, 2 do if all[i] == ARGV[1] then table.insert(out, all[i - 1]) end end
return out`;

/** Users re-claimed per script call: one call never blocks Redis for long. */
const RECLAIM_BATCH = 1_000;

const COUNT_ONLINE = `
local alive = {}
local function live(node)
  if alive[node] == nil then alive[node] = redis.call('EXISTS', ARGV[1] .. 'node:' .. node) end
  return alive[node] == 1
end
local n = 0
if KEYS[2] then
  for _, user in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local node = redis.call('HGET', KEYS[1], user)
    if node and live(node) then n = n + 1 end
  end
else
  local all = redis.call('HGETALL', KEYS[1])
  for i = 2, #all, 2 do if live(all[i]) then n = n + 1 end end
end
return n`;

const NODE_STATS = `
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. node) == 1 then
    table.insert(out, node)
    table.insert(out, redis.call('HGETALL', ARGV[1] .. 'nodestats:' .. node))
  else
    redis.call('SREM', KEYS[1], node)
  end
end
return out`;

/** Who is online across the cluster, with each node holding a lease on its own users. */
export class RedisPresence {
  #timer: Timer | undefined;
  #lapsed = false;
  /**
   * Users whose release failed (Redis away): they would look online here for as long as this node
   * lives, so each renewal releases them again, unless they were claimed here again meanwhile.
   */
  readonly #unreleased = new Set<number>();
  /** Users this node claimed and has not released: what Redis should say is online here. */
  readonly #claimed = new Set<number>();

  constructor(
    private readonly redis: RedisLink,
    private readonly prefix: string,
    readonly nodeId: string,
    private readonly leaseMs: number,
    /** This node's users and counters, re-asserted after an outage and published with each renewal. */
    private readonly local: { users(): Iterable<number>; stats(): Record<string, number> },
    /**
     * Checked with every renewal: false when Redis had lost the data (and it was re-established
     * meanwhile), so the users this node had claimed are claimed again only if they still exist.
     */
    private readonly sameData: () => Promise<boolean>,
  ) {}

  async start(): Promise<void> {
    // What Redis holds may have changed while the link was down (a restart, a restore from an older
    // snapshot): the next renewal makes it say again exactly which users are online here.
    this.redis.onReconnect(() => (this.#lapsed = true));
    await this.#renew();
    this.#timer = setInterval(() => void this.#renew().catch(() => (this.#lapsed = true)), Math.max(100, this.leaseMs / 3));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.redis.call("DEL", [this.#k(`node:${this.nodeId}`), this.#k(`nodestats:${this.nodeId}`)]).catch(() => undefined);
  }

  async isOnline(user: number): Promise<boolean> {
    return (await this.redis.script(IS_ONLINE, [this.#k("online")], [user, this.prefix])) === 1;
  }

  /** Marks the user online on this node; true when a browser of theirs was online on another live node. */
  async claim(user: number): Promise<boolean> {
    this.#unreleased.delete(user);
    this.#claimed.add(user);
    return (await this.redis.script(CLAIM, [this.#k("online")], [user, this.nodeId, this.prefix])) === 1;
  }

  async release(user: number): Promise<void> {
    this.#claimed.delete(user);
    try {
      await this.redis.script(RELEASE, [this.#k("online")], [user, this.nodeId]);
    } catch (error) {
      this.#unreleased.add(user);
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
    const out: Record<string, number>[] = [this.local.stats()];
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i] === this.nodeId) continue;
      const fields = raw[i + 1] as string[];
      const stats: Record<string, number> = {};
      for (let j = 0; j < fields.length; j += 2) stats[fields[j]!] = Number(fields[j + 1]);
      out.push(stats);
    }
    return out;
  }

  async #renew(): Promise<void> {
    const same = await this.sameData();
    const lease = this.#k(`node:${this.nodeId}`);
    const stats = this.local.stats();
    const fields = Object.entries(stats).flat();
    await this.redis.call("SET", [lease, "1", "PX", this.leaseMs]);
    await this.redis.call("SADD", [this.#k("nodes"), this.nodeId]);
    if (fields.length > 0) {
      await this.redis.call("HSET", [this.#k(`nodestats:${this.nodeId}`), ...fields]);
      await this.redis.call("PEXPIRE", [this.#k(`nodestats:${this.nodeId}`), this.leaseMs]);
    }
    await this.#releaseAgain();
    if (this.#lapsed || !same) {
      // Other nodes may have forgotten our users while our lease had lapsed, or Redis lost them:
      // claim those that still exist again, and release those Redis says are here but are not.
      await this.#prune();
      await this.#reclaim([...this.local.users()]);
      this.#lapsed = false;
    }
  }

  async #releaseAgain(): Promise<void> {
    for (const user of [...this.#unreleased]) {
      // Checked just before each: a claim made since is sent after this release, so it stands.
      if (!this.#unreleased.delete(user)) continue;
      await this.release(user);
    }
  }

  async #prune(): Promise<void> {
    const mine = (await this.redis.script(MINE, [this.#k("online")], [this.nodeId])) as string[];
    for (const user of mine.map(Number)) {
      // Checked just before each: a claim made since is sent after this release, so it stands.
      if (this.#claimed.has(user)) continue;
      await this.redis.script(RELEASE, [this.#k("online")], [user, this.nodeId]);
    }
  }

  async #reclaim(users: number[]): Promise<void> {
    const keys = [this.#k("online"), this.#k("users")];
    for (let i = 0; i < users.length; i += RECLAIM_BATCH) {
      await this.redis.script(RECLAIM, keys, [this.nodeId, ...users.slice(i, i + RECLAIM_BATCH)]);
    }
  }

  #k(name: string): string {
    return this.prefix + name;
  }
}
