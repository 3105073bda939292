import { Event } from "../protocol/codes.ts";
import type { RedisConnection } from "../state/redis-connection.ts";
import type { ShardMap } from "../state/shard-map.ts";
import { encodeBus, eventsChannel } from "./bus.ts";

// With --sessions above 1 in a cluster, `[online]` and `[offline]` follow ADMITTED browsers only:
// present:U is the set of nodes holding at least one admitted browser of user U. A node's first
// admitted browser of the user adds the node (ARRIVE), its last one's close removes it (DEPART), and
// the event is published on the events channel in that same script. Redis runs the scripts one after
// another, so however logins and closes on several nodes interleave, a listener hears one `[online]`
// when the set stops being empty and one `[offline]` when it empties again, in that order. Claims
// (the `online` hash, presence.ts) still route messages, but no longer decide who raises an event:
// a login that claims a node and is then given up raises nothing.
// A node whose lease lapsed counts as holding nothing (ELSEWHERE); one that dies is taken out of
// present:U by the sweep (presence.ts SWEEP) without an event, as --sessions 1 raises none for a dead
// node's users.

// Lua: whether a node other than ARGV[1] in KEYS[1] holds a lease (ARGV[3]: the key prefix). A node
// whose lease lapsed counts as nowhere, as it does for `[online] ID`: a dead node's users do not keep
// a login elsewhere from raising `[online]`, nor a close elsewhere from raising `[offline]`.
const ELSEWHERE = `
local function present_elsewhere()
  for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if node ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. 'node:' .. node) == 1 then return true end
  end
  return false
end`;

/** Adds this node (ARGV[1]); publishes ARGV[2] on KEYS[2] when the user was present on no live node. */
const arrive = (publish: string) => `${ELSEWHERE}
local was = present_elsewhere() or redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1
redis.call('SADD', KEYS[1], ARGV[1])
if was then return 0 end
redis.call('${publish}', KEYS[2], ARGV[2])
return 1`;

/** Removes this node (ARGV[1]); publishes ARGV[2] on KEYS[2] when that left the user on no live node. */
const depart = (publish: string) => `${ELSEWHERE}
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 or present_elsewhere() then return 0 end
redis.call('${publish}', KEYS[2], ARGV[2])
return 1`;

// On a Redis Cluster the event goes out with SPUBLISH on the events channel of the user's shard
// (listeners follow every shard's), in the slot of present:U.
const SCRIPTS = {
  PUBLISH: { arrive: arrive("PUBLISH"), depart: depart("PUBLISH") },
  SPUBLISH: { arrive: arrive("SPUBLISH"), depart: depart("SPUBLISH") },
};

/** The key of the set of nodes holding an admitted browser of the user. */
export function presentKey(prefix: string, user: number): string {
  return `${prefix}present:${user}`;
}

/** Raises a cluster's `[online]`/`[offline]` for users that may have browsers on several nodes. */
export class PresenceEvents {
  readonly #scripts: { arrive: string; depart: string };

  constructor(
    private readonly redis: RedisConnection,
    private readonly shards: ShardMap,
    private readonly nodeId: string,
  ) {
    this.#scripts = SCRIPTS[shards.count > 1 ? "SPUBLISH" : "PUBLISH"];
  }

  /** The user's first browser here was admitted: `[online]` if no node held one. */
  arrived(user: number): Promise<unknown> {
    return this.#run(this.#scripts.arrive, user, Event.online(user));
  }

  /** The user's last browser here went: `[offline]` if no other node holds one. */
  departed(user: number): Promise<unknown> {
    return this.#run(this.#scripts.depart, user, Event.offline(user));
  }

  #run(script: string, user: number, event: string): Promise<unknown> {
    const tag = this.shards.tags[this.shards.of(user)]!;
    const keys = [presentKey(tag, user), eventsChannel(tag)];
    return this.redis.script(script, keys, [this.nodeId, encodeBus({ k: "e", p: event }), tag]);
  }
}
