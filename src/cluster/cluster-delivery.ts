import type { ConsolaInstance } from "consola";
import type { Delivery, LocalDelivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import type { Metrics } from "../observe/metrics.ts";
import { CloseCode, Event, type CloseReason } from "../protocol/codes.ts";
import type { RedisConnection } from "../state/redis-connection.ts";
import type { Maybe } from "../state/state.ts";
import { ShardMap } from "../state/shard-map.ts";
import { channelNodesKey, nodeChannel, ONLINE_NODES } from "../state/route-redis.ts";
import { busChannel, busStamp, decodeBus, encodeBus, eventsChannel, type BusMessage } from "./bus.ts";
import type { Presence } from "./presence-kind.ts";
import { PresenceEvents } from "./presence-events.ts";
import type { ClusterSessionLimit } from "./session-limit.ts";
import { SessionLimitReached } from "../core/session-limit-reached.ts";
import { ArrivalShouts } from "./arrival-shouts.ts";

export interface ClusterOptions {
  redis: RedisConnection;
  prefix: string;
  /** On a Redis Cluster, the shards (node channels in each, sharded pub/sub); one shard, the prefix, otherwise. */
  shards?: ShardMap;
  presence: Presence;
  local: LocalDelivery;
  /** Where each user's channels are kept, to resync this node's browsers after an outage. */
  channelsOf: (user: number) => Promise<number[]>;
  events: EventHub;
  metrics: Metrics;
  log: ConsolaInstance;
  /** Checks (and if need be re-establishes) this node's generation: run when another node found a data loss. */
  checkGeneration?: () => Promise<unknown>;
  /**
   * --sessions above 1: a login here adds this node to the user's nodes instead of closing its browser
   * elsewhere, and this node stays among them while any browser of the user is here.
   */
  several?: boolean;
  /** --sessions above 1 counted across the cluster (session-limit.ts): each login here is numbered and counted in sess:U. */
  limit?: ClusterSessionLimit;
}

// To each node that hosts a browser of the user, if any (presence.ts's online hash). ARGV[2]: the prefix.
const toUserScript = (publish: string) => `${ONLINE_NODES}
for _, node in ipairs(online_nodes(redis.call('HGET', KEYS[1], ARGV[1]))) do
  redis.call('${publish}', ARGV[2] .. 'to:' .. node, ARGV[3])
end
return 0`;

// To every node with a browser in the channel (chnodes:C, route-redis.ts).
const toChannelScript = (publish: string) => `
for _, node in ipairs(redis.call('HKEYS', KEYS[1])) do redis.call('${publish}', ARGV[1] .. 'to:' .. node, ARGV[2]) end
return 0`;

// On a Redis Cluster every publish is SPUBLISH, to a channel in the slot of the script's keys.
const SCRIPTS = {
  PUBLISH: { toUser: toUserScript("PUBLISH"), toChannel: toChannelScript("PUBLISH") },
  SPUBLISH: { toUser: toUserScript("SPUBLISH"), toChannel: toChannelScript("SPUBLISH") },
};

/**
 * Delivery for a node of a cluster. Everything aimed at a browser goes out on the Redis pub/sub
 * channel of the node that hosts it (bus.ts), and that node applies it: one path per node, in Redis's
 * order, so one control connection's messages reach every browser in the order they were sent. A
 * node hears nothing about browsers it does not host.
 */
export class ClusterDelivery implements Delivery {
  readonly #o: ClusterOptions;
  /** The cluster-wide channel (the data-loss notice). */
  readonly #channel: string;
  readonly #events: string;
  /** Subscribing to and leaving the events channel, one change after another. */
  #eventsLink = Promise.resolve();
  /** Users whose browser is logging in here: what the bus says about them waits until the login is done. */
  readonly #arriving = new Map<number, BusMessage[]>();
  /** Shouts heard while logins were in flight: the browser a login admits gets those it missed. */
  readonly #late = new ArrivalShouts();
    /** Browsers numbered by a claim here whose login is not decided yet (session-limit.ts). */
  readonly #inflight = new Set<number>();
  /**
   * Of those, how many per user: while one is in flight the node stays among the user's, though its
   * last admitted browser here goes (a tab replaced while another logs in here), or it would be admitted
   * with the node no longer in `online`, unreachable.
   */
  readonly #claiming = new Map<number, number>();
  /** Users whose last browser here went while a login of theirs was in flight: `[offline]` waits on that login. */
  readonly #owed = new Set<number>();
  /** Of those, the ones another login replaced meanwhile: they are refused at admission. */
  readonly #doomed = new Set<number>();
  /** While this node checks its generation after another found a data loss: what the bus brought meanwhile. */
  #paused: BusMessage[] | undefined;
  /** --sessions above 1: `[online]`/`[offline]` decided on admitted browsers, in Redis (presence-events.ts). */
  readonly #presenceEvents: PresenceEvents | undefined;
  readonly #shards: ShardMap;
  readonly #sharded: boolean;
  readonly #scripts: { toUser: string; toChannel: string };

  constructor(options: ClusterOptions) {
    this.#o = options;
    this.#shards = options.shards ?? ShardMap.single(options.prefix);
    this.#sharded = this.#shards.count > 1;
    this.#scripts = SCRIPTS[this.#sharded ? "SPUBLISH" : "PUBLISH"];
    if (options.several) this.#presenceEvents = new PresenceEvents(options.redis, this.#shards, options.presence.nodeId);
    this.#channel = busChannel(this.#shards.tags[0]!);
    this.#events = eventsChannel(this.#shards.tags[0]!);
  }

  async start(): Promise<void> {
    const { redis, prefix, presence, events } = this.#o;
    const listener = (text: string) => {
      this.#o.metrics.busReceived++;
      const message = decodeBus(text);
      if (message) this.#receive(message);
      else this.#o.log.warn("ignored a malformed cluster bus message");
    };
    // What reached neither channel while the link was down, or while Redis did not count our users
    // as ours (a lapse), is made up for by a resync.
    // On a Redis Cluster, one node channel per shard: each shard's scripts publish to their own.
    if (this.#sharded) {
      const resync = this.#resyncOnce();
      await Promise.all(this.#shards.tags.map((tag) => redis.ssubscribe(nodeChannel(tag, presence.nodeId), listener, resync)));
    } else await redis.subscribe(nodeChannel(prefix, presence.nodeId), listener, () => void this.#resync());
    await redis.subscribe(this.#channel, listener);
    presence.onReclaimed(() => void this.#resync());
    presence.onReclaimed(() => void this.#reassertSessions());
    events.whenListening((listening) => {
      const change = () => (listening ? this.#followEvents(listener) : this.#leaveEvents());
      this.#eventsLink = this.#eventsLink.then(change).catch((error: Error) => this.#o.log.warn(`could not follow the events channel: ${error.message}`));
      return this.#eventsLink;
    });
    events.relayThrough((payload) => void this.#publishTo(this.#events, { k: "e", p: payload }).catch(() => undefined));
  }

  /**
   * Tells every node that Redis lost the data, before this one re-creates it: anything published for
   * the new data comes after this on the bus, so no node hands it to a browser of the old data.
   */
  announceDataLoss(): Promise<void> {
    return this.#publishTo(this.#channel, { k: "g" });
  }

  isOnline(user: number): Promise<boolean> {
    return this.#o.presence.isOnline(user);
  }

  onlineCount(): Promise<number> {
    return this.#o.presence.onlineCount();
  }

  onlineIn(channel: number): Promise<number> {
    return this.#o.presence.onlineIn(channel);
  }

  // The executor sends a cluster's whispers and shouts through ClusterNumbering (numbered and published
  // in one script); these two keep the Delivery contract for any caller that has its offset already.
  toUser(user: number, message: string, offset: number): Promise<void> {
    return this.#toUser(user, { k: "u", u: user, m: message, o: offset });
  }

  /** Each node counts its own deliveries when the shout reaches it; the sender cannot know them. */
  async toChannel(channel: number, message: string, offset: number): Promise<number> {
    const tag = this.#shards.tags[this.#shards.of(channel)]!;
    await this.#o.redis.script(this.#scripts.toChannel, [channelNodesKey(tag, channel)], [tag, encodeBus({ k: "c", c: channel, m: message, o: offset })]);
    return 0;
  }

  // The membership scripts (RedisState's join, leave and deleteChannel) tell the user's node in the
  // step that changes the membership: nothing is left to send here.
  async subscribe(): Promise<void> {}

  async unsubscribe(): Promise<void> {}

  disconnect(user: number, reason: CloseReason): Promise<void> {
    return this.#toUser(user, { k: "d", u: user, r: reason.code });
  }

  async claim(user: number, prepare?: () => Maybe<void>): Promise<number | void> {
    // Two tabs logging in at once (--sessions): what waits for the first is kept for the user's browsers.
    if (!this.#o.several || !this.#arriving.has(user)) this.#arriving.set(user, []);
    this.#late.begin(user);
    try {
      await prepare?.();
    } catch (error) {
      this.#arriving.delete(user);
      this.#late.forget(user);
      throw error;
    }
    // Whether this login's end was told to #late already (unclaim and settled do): once per login.
    // #claimLimited ends every failed claim through one of them.
    let ended = this.#o.limit !== undefined;
    try {
      const { presence, limit } = this.#o;
      if (limit) return await this.#claimLimited(user, limit);
      try {
        if (this.#o.several) await presence.claimAlso(user);
        else await presence.claim(user, encodeBus({ k: "d", u: user, r: CloseCode.replaced.code, x: presence.nodeId }));
      } catch (error) {
        // The claim may have taken in Redis before a later step of it failed (its routes, in a channel
        // shard that is away): undone as for a login that ends unadmitted, or the user would stay online
        // here with no browser, its whispers answered "sent" and lost.
        ended = true;
        await this.unclaim(user).catch(() => undefined);
        throw error;
      }
    } catch (error) {
      this.#arriving.delete(user);
      if (!ended) this.#late.forget(user);
      throw error;
    }
  }

  /** The claim that also counts the browser in sess:U; refused past the limit under reject. */
  async #claimLimited(user: number, limit: ClusterSessionLimit): Promise<number> {
    const session = limit.nextSession();
    this.#inflight.add(session);
    this.#claiming.set(user, (this.#claiming.get(user) ?? 0) + 1);
    let counted: boolean | undefined;
    try {
      counted = await this.#o.presence.claimLimited(user, limit.member(session), limit.limit, limit.reject);
    } catch (error) {
      this.#decided(user, session);
      // As in claim: it may have taken before it failed; its session slot is freed too.
      await this.unclaim(user, session).catch(() => undefined);
      throw error;
    }
    if (counted === undefined) {
      this.#decided(user, session);
      // Nothing was claimed: what waited for this login goes to the user's browsers here, if any.
      this.settled(user);
      throw new SessionLimitReached(user);
    }
    return session;
  }

  /**
   * The login numbered `session` is about to be admitted: false when a newer login elsewhere replaced
   * it while it was in flight (its close reached this node before the browser did).
   */
  admitting(user: number, session: number): boolean {
    this.#decided(user, session);
    if (this.#doomed.delete(session)) return false;
    this.#owed.delete(user);
    return true;
  }

  /** The login numbered `session` is no longer in flight. */
  #decided(user: number, session: number): void {
    if (!this.#inflight.delete(session)) return;
    const left = (this.#claiming.get(user) ?? 1) - 1;
    if (left > 0) this.#claiming.set(user, left);
    else this.#claiming.delete(user);
  }

  /** Closes the browser `session` of the user here, or dooms its login if that is still in flight. */
  #closeSession(user: number, session: number): void {
    if (this.#o.local.closeSession?.(user, session, CloseCode.sessionReplaced)) return;
    if (this.#inflight.has(session)) this.#doomed.add(session);
  }

  /** A browser numbered by its claim here closed: its slot in sess:U is free. */
  closed(user: number, session: number): void {
    this.#o.limit?.drop(user, session).catch((error: Error) => this.#o.log.warn(`user ${user}: could not free a session slot: ${error.message}`));
  }

  async unclaim(user: number, session?: number): Promise<void> {
    if (session !== undefined) {
      this.#decided(user, session);
      this.#doomed.delete(session);
      this.closed(user, session);
    }
    // Another browser of the user here keeps the node among the user's (--sessions), and what the bus
    // brought for the user meanwhile is theirs: it goes to them now rather than being dropped.
    if (this.#o.several && this.#o.local.isOnline(user)) return this.settled(user);
    this.#late.forget(user);
    if (this.#claiming.has(user)) return;
    if (this.#owed.delete(user)) return this.#releaseOwed(user);
    this.#arriving.delete(user);
    await this.#o.presence.release(user);
  }

  /**
   * Asked once, when the user's first browser here is admitted: true when its `[online]` is not this
   * caller's to raise. With --sessions above 1 it never is: the admission is recorded in Redis, which
   * raises `[online]` iff no node held an admitted browser of the user (presence-events.ts).
   */
  elsewhere(user: number): boolean {
    // With --sessions 1 the claim closed any browser elsewhere: this login's `[online]` is its own.
    if (!this.#presenceEvents) return false;
    this.#presenceEvents.arrived(user).catch((error: Error) => this.#eventFailed(Event.online(user), error));
    return true;
  }

  /** The login finished (admitted or not): apply what waited for it. */
  settled(user: number): void {
    const waiting = this.#arriving.get(user);
    this.#arriving.delete(user);
    for (const message of waiting ?? []) this.#apply(message);
    // After the memberships that waited: a leave heard meanwhile keeps the channel's later shouts away.
    const late = this.#late.take(user);
    if (late.shouts.length > 0 || late.lost) this.#o.local.lateShouts?.(user, late);
  }

  /**
   * The user's last browser on this node is gone. With --sessions above 1, answers whether the user
   * still has browsers on another live node (then `[offline]` is not this node's to raise).
   */
  released(user: number): void | Promise<boolean> {
    // Another login of the user is in flight here: the node stays among the user's, for that one.
    if (this.#claiming.has(user)) {
      this.#owed.add(user);
    }
    const released = this.#claiming.has(user) ? Promise.resolve(true) : this.#o.presence.release(user);
    if (!this.#presenceEvents) return void released.catch(() => undefined);
    // Sent after the release, on the same link: a backend that hears `[offline]` and asks `[online]` gets 0.
    released.catch(() => undefined);
    return this.#presenceEvents.departed(user).then(
      () => true,
      (error: Error) => (this.#eventFailed(Event.offline(user), error), true),
    );
  }

  /** Redis did not take a presence change: the event is raised here, as a node alone would. */
  #eventFailed(event: string, error: Error): void {
    this.#o.log.warn(`could not record presence in Redis (${error.message}); raising ${event} from this node`);
    this.#o.events.emit(event);
  }

  /**
   * After the bus was down, joins and leaves sent meanwhile never reached this node: make every local
   * browser follow its channels as Redis has them again. Whispers and shouts sent meanwhile are gone
   * for it too: each webtalk.v2 browser gets `#gap` for its sources.
   */
  async #resync(): Promise<void> {
    const { local } = this.#o;
    // What was published while the bus was down never reached this node: its v2 browsers are told.
    local.gapAll();
    await this.#follow([...local.users()], 0);
  }

  /**
   * Makes each user's browsers here follow its channels as Redis has them. Those whose channels could
   * not be read (the link or, on a Redis Cluster, their shard is still away) are tried again a moment
   * later, for as long as RESYNC_TRIES allow: their joins and leaves of the outage would be missed.
   */
  async #follow(users: number[], attempt: number): Promise<void> {
    const { local, channelsOf, log } = this.#o;
    const failed: number[] = [];
    let reason = "";
    for (const user of users) {
      if (!local.isOnline(user)) continue;
      try {
        local.follow(user, await channelsOf(user));
      } catch (error) {
        failed.push(user);
        reason = (error as Error).message;
      }
    }
    if (failed.length === 0) return log.info(`cluster bus back: resynced the channels of ${users.length} local user(s)`);
    if (attempt + 1 >= RESYNC_TRIES) return log.warn(`could not resync the channels of ${failed.length} local user(s), giving up: ${reason}`);
    log.warn(`could not resync the channels of ${failed.length} local user(s) yet (${reason}); trying again in ${RESYNC_RETRY_MS} ms`);
    setTimeout(() => void this.#follow(failed, attempt + 1), RESYNC_RETRY_MS);
  }

  /** The last login in flight of a user whose browsers here are gone failed: the user leaves this node. */
  async #releaseOwed(user: number): Promise<void> {
    this.#arriving.delete(user);
    // Its `[offline]` was decided when its last admitted browser here went (released).
    await this.#o.presence.release(user).catch(() => undefined);
  }

  /**
   * After a lapse, the sweep may have dropped this node's browsers from sess:U: they are counted again
   * within each user's limit, and those past it (their user logged in elsewhere meanwhile) are closed.
   */
  async #reassertSessions(): Promise<void> {
    const { limit, local, log } = this.#o;
    if (!limit || !local.sessionsOf) return;
    const sessionsOf = local.sessionsOf;
    try {
      const users = [...local.users()].map((user): [number, number[]] => [user, sessionsOf(user)]);
      for (const [user, session] of await limit.reassert(users)) local.closeSession?.(user, session, CloseCode.sessionReplaced);
    } catch (error) {
      log.warn(`could not count this node's sessions again: ${(error as Error).message}`);
    }
  }

  #toUser(user: number, message: BusMessage): Promise<void> {
    const tag = this.#shards.tags[this.#shards.of(user)]!;
    return this.#o.redis.script(this.#scripts.toUser, [`${tag}online`], [user, tag, encodeBus(message)]).then(() => undefined);
  }

  /** The data-loss notice goes to every node (classic pub/sub); events on shard 0's events channel. */
  #publishTo(channel: string, message: BusMessage): Promise<void> {
    const command = this.#sharded && channel === this.#events ? "SPUBLISH" : "PUBLISH";
    return this.#o.redis.call(command, [channel, encodeBus(message)]).then(() => undefined);
  }

  /** Hears `[listen]` events: every shard's events channel on a Redis Cluster. */
  async #followEvents(listener: (text: string) => void): Promise<void> {
    if (!this.#sharded) return this.#o.redis.subscribe(this.#events, listener);
    await Promise.all(this.#shards.tags.map((tag) => this.#o.redis.ssubscribe(eventsChannel(tag), listener)));
  }

  async #leaveEvents(): Promise<void> {
    if (!this.#sharded) return this.#o.redis.unsubscribe(this.#events);
    await Promise.all(this.#shards.tags.map((tag) => this.#o.redis.sunsubscribe(eventsChannel(tag))));
  }

  /**
   * One resync for a burst of resubscriptions: after a failover every shard of the lost master is
   * subscribed again, each calling this.
   */
  #resyncOnce(): () => void {
    let pending = false;
    return () => {
      if (pending) return;
      pending = true;
      setTimeout(() => {
        pending = false;
        void this.#resync();
      }, 50);
    };
  }

  #receive(message: BusMessage): void {
    if (this.#paused) return void this.#paused.push(message);
    if (message.k === "g") return this.#pauseForGeneration();
    this.#apply(message);
  }

  /** Applies nothing more until this node's generation is checked (its orphaned browsers closed). */
  #pauseForGeneration(): void {
    this.#paused = [];
    const resume = () => {
      const queued = this.#paused ?? [];
      this.#paused = undefined;
      for (let i = 0; i < queued.length; i++) {
        // A later data loss paused the bus again: keep the rest, in order, for after it.
        if (this.#paused) return void (this.#paused as BusMessage[]).push(...queued.slice(i));
        this.#receive(queued[i]!);
      }
    };
    (this.#o.checkGeneration?.() ?? Promise.resolve()).then(resume, resume);
  }

  #apply(message: BusMessage): void {
    const { local, metrics, events } = this.#o;
    if (message.k === "e") return events.fanout(message.p);
    if (message.k === "g") return;
    if (message.k === "c") {
      metrics.delivered += local.toChannel(message.c, message.m, message.o);
      this.#late.heard(message);
      if (message.t !== undefined) observeLag(metrics, message.t);
      return;
    }
    const waiting = this.#arriving.get(message.u);
    if (waiting) return void waiting.push(message);
    switch (message.k) {
      case "u":
        local.toUser(message.u, message.m, message.o);
        if (message.t !== undefined) observeLag(metrics, message.t);
        return;
      case "s":
        return void local.subscribe(message.u, message.c, message.o);
      case "x":
        return void local.unsubscribe(message.u, message.c);
      case "q":
        return this.#closeSession(message.u, message.s);
      case "d":
        if (message.x !== this.#o.presence.nodeId) local.disconnect(message.u, reasonFor(message.r));
        return;
    }
  }
}

/** A resync's users whose channels could not be read are tried again this often, this many times (a failover takes seconds). */
const RESYNC_RETRY_MS = 1_000;
const RESYNC_TRIES = 30;

/** From the sending node's stamp to now; a clock behind the sender's counts as no lag, not a negative one. */
function observeLag(metrics: Metrics, sentMs: number): void {
  metrics.clusterDeliveryLagSeconds.observe(Math.max(0, busStamp() - sentMs) / 1000);
}

function reasonFor(code: number): CloseReason {
  return Object.values(CloseCode).find((reason) => reason.code === code) ?? CloseCode.killed;
}
