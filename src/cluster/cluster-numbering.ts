import type { NumberedSend, WhisperOutcome } from "../core/numbered-send.ts";
import { channelStream, userStream, type ReplayLimits } from "../core/replay.ts";
import { Lineage } from "../state/lineage.ts";
import { APPEND_STEP, appendArgs, replayKeys } from "../state/replay-redis.ts";
import { channelNodesKey, nodeChannel, ONLINE_NODES } from "../state/route-redis.ts";
import { busStamp, encodeBusHead } from "./bus.ts";

// Redis runs a script alone, so between a source's INCR and its PUBLISH no other offset of that source
// is given out: every node's subscriber reads its channel in publish order, hence in offset order.
// ARGV[5]: the prefix of the node channels (`PREFIX to:`); ARGV[6]: the bus message up to its offset
// (encodeBusHead). Both run guarded (lineage.ts): a Redis that went back in time must not hand out
// offsets again. Each checks that its channel or user exists in the same step, so a send is one round
// trip; 0 (no offset is ever 0) answers "no such channel/user", and nothing is numbered then.

// A shout goes to the nodes that have a browser in the channel, as KEYS[3] (chnodes:C, route-redis.ts)
// counts them in this same Redis order: a [join] answered before it has already counted its node.
// KEYS[4]: the channels set; ARGV[7]: the channel.
const SHOUT = Lineage.guarded(`
if redis.call('SISMEMBER', KEYS[4], ARGV[7]) == 0 then return 0 end
${APPEND_STEP}
local nodes = redis.call('HKEYS', KEYS[3])
if #nodes > 0 then
  local text = ARGV[6] .. offset .. '}'
  for _, node in ipairs(nodes) do redis.call('PUBLISH', ARGV[5] .. node, text) end
end
return offset`);

// A whisper goes out only when its user is online on a live node (presence.ts's layout: the online
// hash names the user's node, or nodes with --sessions, node:ID is a node's lease), to each such node; else it is held in the same script (the
// layout and limit of RedisState.hold), so a login's take of the held queue comes before or after it,
// never between the numbering and the hold. Returns {offset, held (0|1), dropped}.
// KEYS[3]: the online hash; KEYS[4..6]: users, held:USER, heldcount; ARGV[7]: the user; ARGV[8]: the
// key prefix; ARGV[9]: the held limit.
const WHISPER = Lineage.guarded(`${ONLINE_NODES}
if redis.call('HEXISTS', KEYS[4], ARGV[7]) == 0 then return 0 end
${APPEND_STEP}
local live = {}
for _, node in ipairs(online_nodes(redis.call('HGET', KEYS[3], ARGV[7]))) do
  if redis.call('EXISTS', ARGV[8] .. 'node:' .. node) == 1 then table.insert(live, node) end
end
if #live == 0 then
  local len = redis.call('RPUSH', KEYS[5], offset .. '!' .. ARGV[1])
  redis.call('INCR', KEYS[6])
  local excess = len - tonumber(ARGV[9])
  if excess > 0 then
    redis.call('LTRIM', KEYS[5], excess, -1)
    redis.call('DECRBY', KEYS[6], excess)
    return {offset, 1, excess}
  end
  return {offset, 1, 0}
end
local text = ARGV[6] .. offset .. '}'
for _, node in ipairs(live) do redis.call('PUBLISH', ARGV[5] .. node, text) end
return {offset, 0, 0}`);

/** A cluster's numbered send: offset, replay window and bus publish in one Redis script per message. */
export class ClusterNumbering implements NumberedSend {
  /** The node channels' common prefix: the script appends the node. */
  readonly #bus: string;

  constructor(
    private readonly lineage: Lineage,
    private readonly prefix: string,
    private readonly limits: ReplayLimits,
  ) {
    this.#bus = nodeChannel(prefix, "");
  }

  async shout(channel: number, message: string): Promise<boolean> {
    const head = encodeBusHead({ k: "c", c: channel, m: message, t: busStamp() });
    const args = [...appendArgs(message, this.limits), this.#bus, head, channel];
    const keys: string[] = replayKeys(this.prefix, channelStream(channel));
    keys.push(channelNodesKey(this.prefix, channel), `${this.prefix}channels`);
    return Number(await this.lineage.run(SHOUT, keys, args)) !== 0;
  }

  async whisper(user: number, message: string, heldLimit: number): Promise<WhisperOutcome | undefined> {
    const head = encodeBusHead({ k: "u", u: user, m: message, t: busStamp() });
    const p = this.prefix;
    const keys = [...replayKeys(p, userStream(user)), `${p}online`, `${p}users`, `${p}held:${user}`, `${p}heldcount`];
    const args = [...appendArgs(message, this.limits), this.#bus, head, user, p, heldLimit];
    const reply = await this.lineage.run(WHISPER, keys, args);
    if (!Array.isArray(reply)) return undefined;
    const [, held, dropped] = reply as [number, number, number];
    return Number(held) === 1 ? { held: true, dropped: Number(dropped) } : { held: false };
  }
}
