import type { NumberedSend, WhisperOutcome } from "../core/numbered-send.ts";
import { channelStream, userStream, type ReplayLimits } from "../core/replay.ts";
import { Lineage } from "../state/lineage.ts";
import { ShardMap } from "../state/shard-map.ts";
import { APPEND_STEP, appendArgs, replayKeys } from "../state/replay-redis.ts";
import { channelNodesKey, nodeChannel, ONLINE_NODES } from "../state/route-redis.ts";
import { busStamp, encodeBusHead } from "./bus.ts";

// Redis runs a script alone, so between a source's INCR and its PUBLISH no other offset of that source
// is given out: every node's subscriber reads its channel in publish order, hence in offset order.
// ARGV[4]: the prefix of the node channels (`PREFIX to:`); ARGV[5]: the bus message up to its offset
// (encodeBusHead). Both run guarded (lineage.ts): a Redis that went back in time must not hand out
// offsets again. Each checks that its channel or user exists in the same step, so a send is one round
// trip; 0 (no offset is ever 0) answers "no such channel/user", and nothing is numbered then.

// A shout goes to the nodes that have a browser in the channel, as KEYS[3] (chnodes:C, route-redis.ts)
// counts them in this same Redis order: a [join] answered before it has already counted its node.
// KEYS[4]: the channels set; ARGV[6]: the channel.
// On a Redis Cluster `publish` is SPUBLISH: the node channels are in the shard's slot (shard-map.ts).
const shoutScript = (publish: string) => Lineage.guarded(`
if redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 0 then return 0 end
${APPEND_STEP}
local nodes = redis.call('HKEYS', KEYS[3])
if #nodes > 0 then
  local text = ARGV[5] .. offset .. '}'
  for _, node in ipairs(nodes) do redis.call('${publish}', ARGV[4] .. node, text) end
end
return offset`);

// A whisper goes out only when its user is online on a live node (presence.ts's layout: the online
// hash names the user's node, or nodes with --sessions, node:ID is a node's lease), to each such node; else it is held in the same script (the
// layout and limit of RedisState.hold), so a login's take of the held queue comes before or after it,
// never between the numbering and the hold. Returns {offset, held (0|1), dropped}.
// KEYS[3]: the online hash; KEYS[4..6]: users, held:USER, heldcount; ARGV[6]: the user; ARGV[7]: the
// key prefix; ARGV[8]: the held limit.
const whisperScript = (publish: string) => Lineage.guarded(`${ONLINE_NODES}
if redis.call('HEXISTS', KEYS[4], ARGV[6]) == 0 then return 0 end
${APPEND_STEP}
local live = {}
for _, node in ipairs(online_nodes(redis.call('HGET', KEYS[3], ARGV[6]))) do
  if redis.call('EXISTS', ARGV[7] .. 'node:' .. node) == 1 then table.insert(live, node) end
end
if #live == 0 then
  local len = redis.call('RPUSH', KEYS[5], offset .. '!' .. ARGV[1])
  redis.call('INCR', KEYS[6])
  local excess = len - tonumber(ARGV[8])
  if excess > 0 then
    redis.call('LTRIM', KEYS[5], excess, -1)
    redis.call('DECRBY', KEYS[6], excess)
    return {offset, 1, excess}
  end
  return {offset, 1, 0}
end
local text = ARGV[5] .. offset .. '}'
for _, node in ipairs(live) do redis.call('${publish}', ARGV[4] .. node, text) end
return {offset, 0, 0}`);

const SCRIPTS = {
  PUBLISH: { shout: shoutScript("PUBLISH"), whisper: whisperScript("PUBLISH") },
  SPUBLISH: { shout: shoutScript("SPUBLISH"), whisper: whisperScript("SPUBLISH") },
};

/**
 * A cluster's numbered send: offset, replay window and bus publish in one Redis script per message, in
 * the shard of the message's channel or user (one shard, the prefix, on a single Redis).
 */
export class ClusterNumbering implements NumberedSend {
  readonly #shards: ShardMap;
  readonly #scripts: { shout: string; whisper: string };

  constructor(
    private readonly lineage: Lineage,
    prefix: string | ShardMap,
    private readonly limits: ReplayLimits,
  ) {
    this.#shards = typeof prefix === "string" ? ShardMap.single(prefix) : prefix;
    this.#scripts = SCRIPTS[this.#shards.count > 1 ? "SPUBLISH" : "PUBLISH"];
  }

  async shout(channel: number, message: string): Promise<boolean> {
    const head = encodeBusHead({ k: "c", c: channel, m: message, t: busStamp() });
    const shard = this.#shards.of(channel);
    const tag = this.#shards.tags[shard]!;
    const args = [...appendArgs(message, this.limits), nodeChannel(tag, ""), head, channel];
    const keys: string[] = replayKeys(tag, channelStream(channel));
    keys.push(channelNodesKey(tag, channel), `${tag}channels`);
    return Number(await this.lineage.run(this.#scripts.shout, keys, args, shard)) !== 0;
  }

  async whisper(user: number, message: string, heldLimit: number): Promise<WhisperOutcome | undefined> {
    const head = encodeBusHead({ k: "u", u: user, m: message, t: busStamp() });
    const shard = this.#shards.of(user);
    const p = this.#shards.tags[shard]!;
    const keys = [...replayKeys(p, userStream(user)), `${p}online`, `${p}users`, `${p}held:${user}`, `${p}heldcount`];
    const args = [...appendArgs(message, this.limits), nodeChannel(p, ""), head, user, p, heldLimit];
    const reply = await this.lineage.run(this.#scripts.whisper, keys, args, shard);
    if (!Array.isArray(reply)) return undefined;
    const [, held, dropped] = reply as [number, number, number];
    return Number(held) === 1 ? { held: true, dropped: Number(dropped) } : { held: false };
  }
}
