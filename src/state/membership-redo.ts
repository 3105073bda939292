import type { RedisConnection } from "./redis-connection.ts";
import { RedoQueue } from "./redo-queue.ts";
import type { ShardMap } from "./shard-map.ts";

// On a Redis Cluster a membership change is a user step then a channel step (redis-cluster-state.ts).
// A step that fails (a timeout, a shard away) may still run late, or never: its outcome is unknown, and
// if nothing finished the change the two shards would disagree for good (a non-member getting the
// channel's shouts, a killed user counted forever). So the node finishes it in the background, each
// kind in its bounded queue (redo-queue.ts), versioned so that the late original and any newer change
// win over the redo:
// - a channel step is sent again as it was, and a join's user step undone if it did not apply;
// - a user step that did not answer: the channel's shard is brought to what the user's holds now;
// - a delete's user step that did not answer: what it answered, kept in deleted:U, is read back and
//   its channels' steps sent.
// Reads go on the same connection as the step they follow, so they see a late run of it.

/** A channel step (CHANNEL_MEMBERSHIP) in channel's shard `home`: what its user step answered. */
export interface ChannelStep {
  home: number;
  channel: number;
  user: number;
  action: "join" | "leave" | "gone";
  version: number;
  /** Redis's time of the user step. */
  at: number;
  nodes: string;
  pver: number;
}

export interface MembershipRedoParts {
  redis: RedisConnection;
  shards: ShardMap;
  /** Runs a channel step: answers CHANNEL_MEMBERSHIP's 'no-channel', 'stale', 'added' or 'ok'. */
  channelStep: (step: ChannelStep) => Promise<string>;
  /** Undoes the user step of a join that did not apply (USER_UNDO). */
  undoJoin: (step: ChannelStep) => Promise<void>;
  /** The version of a deleted user's removal. */
  goneVersion: number;
}

// Where a membership stands in U's shard now: {'join', its version} when U is in C, else {'leave',
// mver:U} (newer than any change of it applied so far, older than any to come), then Redis's time,
// nodes and pver as the user step answers them. KEYS[1]: the shard's users (it routes the script);
// ARGV: tag, user, channel.
const MEMBERSHIP_NOW = `
local T, U, C = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', T .. 'users', U) == 0 then return {'no-user'} end
local action, v = 'join', redis.call('HGET', T .. 'uch:' .. U, C)
if not v then action, v = 'leave', redis.call('GET', T .. 'mver:' .. U) or '0' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {action, tonumber(v), now, redis.call('HGET', T .. 'online', U) or '', tonumber(redis.call('HGET', T .. 'pver', U) or '0')}`;

// What a delete's user step answered, {time, channels...} ({} when it has not run, or long ago). KEYS[1]: deleted:U.
const DELETED = `return redis.call('LRANGE', KEYS[1], 0, -1)`;

type MembershipNow = ["no-user"] | ["join" | "leave", number, number, string, number];

/** Finishes, in the background, the membership changes whose steps failed half way. */
export class MembershipRedo {
  readonly #o: MembershipRedoParts;
  readonly #unfinished = new RedoQueue<ChannelStep>((step) => this.#finish(step));
  readonly #unsettled = new RedoQueue<[number, number]>(([user, channel]) => this.#settle(user, channel));
  readonly #undeleted = new RedoQueue<number>((user) => this.#finishDelete(user));

  constructor(parts: MembershipRedoParts) {
    this.#o = parts;
  }

  /** A channel step failed: sent again until Redis answers it. */
  channelStepFailed(step: ChannelStep): void {
    this.#unfinished.add(step);
  }

  /** A join's or leave's user step failed: it may have run. */
  userStepFailed(user: number, channel: number): void {
    this.#unsettled.add([user, channel]);
  }

  /** A delete's user step failed: it may have run. */
  deleteFailed(user: number): void {
    this.#undeleted.add(user);
  }

  close(): void {
    this.#unfinished.close();
    this.#unsettled.close();
    this.#undeleted.close();
  }

  async #finish(step: ChannelStep): Promise<void> {
    const applied = await this.#o.channelStep(step);
    if (step.action === "join" && (applied === "stale" || applied === "no-channel")) await this.#o.undoJoin(step);
  }

  async #settle(user: number, channel: number): Promise<void> {
    const { redis, shards } = this.#o;
    const shard = shards.of(user);
    const now = (await redis.script(MEMBERSHIP_NOW, [shards.key(shard, "users")], [shards.tags[shard]!, user, channel])) as MembershipNow;
    if (now[0] === "no-user" || now[1] === 0) return;
    const [action, version, at, nodes, pver] = now;
    await this.#finish({ home: shards.of(channel), channel, user, action, version, at, nodes, pver });
  }

  async #finishDelete(user: number): Promise<void> {
    const { redis, shards } = this.#o;
    const [at, ...channels] = (await redis.script(DELETED, [shards.key(shards.of(user), `deleted:${user}`)], [])) as string[];
    await Promise.all(
      channels.map((text) => {
        const channel = Number(text);
        const step: ChannelStep = { home: shards.of(channel), channel, user, action: "gone", version: this.#o.goneVersion, at: Number(at), nodes: "", pver: 0 };
        return this.#o.channelStep(step);
      }),
    );
  }
}
