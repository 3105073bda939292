// Choosing and opening the state, the replay log and the browser delivery: in memory, in a SQLite
// file (--data), or shared by the nodes of a cluster on Redis (--redis).

import type { ConsolaInstance } from "consola";
import { ClusterDelivery } from "./cluster/cluster-delivery.ts";
import { ClusterNumbering } from "./cluster/cluster-numbering.ts";
import { GenerationWatch } from "./cluster/generation.ts";
import { RedisPresence } from "./cluster/presence.ts";
import type { Presence, PresenceLocal } from "./cluster/presence-kind.ts";
import { RedisClusterPresence } from "./cluster/redis-cluster-presence.ts";
import { RedisClusterLink } from "./state/redis-cluster-link.ts";
import { RedisClusterState } from "./state/redis-cluster-state.ts";
import type { RedisConnection } from "./state/redis-connection.ts";
import { ShardMap } from "./state/shard-map.ts";
import type { Config } from "./config/schema.ts";
import { CloseCode } from "./protocol/codes.ts";
import { ClusterSessionLimit } from "./cluster/session-limit.ts";
import type { SessionHooks } from "./transport/browser-sessions.ts";
import type { Delivery, LocalDelivery } from "./core/delivery.ts";
import type { EventHub } from "./core/events.ts";
import type { NumberedSend } from "./core/numbered-send.ts";
import { MemoryReplay, type ReplayLimits, type ReplayLog } from "./core/replay.ts";
import { newSalt } from "./core/secret.ts";
import { sumCounters, type Metrics } from "./observe/metrics.ts";
import { MemoryState } from "./state/memory.ts";
import { evictionRisk, watchEviction } from "./state/redis-eviction.ts";
import { RedisLink } from "./state/redis-link.ts";
import { RedisState } from "./state/redis.ts";
import { RedisReplay } from "./state/replay-redis.ts";
import { SqliteReplay } from "./state/replay-sqlite.ts";
import { openDataFile } from "./state/sqlite-file.ts";
import { SqliteState } from "./state/sqlite.ts";
import { WriteHealth } from "./state/write-health.ts";
import { detectCluster } from "./state/detect-cluster.ts";
import { StateOpenError, type Maybe, type State } from "./state/state.ts";

/** The state, replay log and browser delivery of one process alone, or of one node of a cluster. */
export interface Backends {
  state: State;
  replay: ReplayLog;
  delivery: Delivery;
  /** A cluster's: offsets given out and published in one step, so every node sees a source in order. */
  numbered?: NumberedSend;
  counters: () => Maybe<Record<string, number>>;
  /** Starts what must run once the public server exists (the cluster bus, the node's lease). */
  start(): Promise<void>;
  close(): Promise<void>;
  /** In a cluster: told when a login is decided and when a local browser goes away. */
  sessions?: SessionHooks;
}

export interface BackendParts {
  config: Config;
  /** This process's browsers. */
  local: LocalDelivery;
  events: EventHub;
  metrics: Metrics;
  log: ConsolaInstance;
}

/** Opens what the config asks for. Throws StateOpenError (a bad data file) or BackendUnavailable (no Redis). */
export async function openBackends(parts: BackendParts): Promise<Backends> {
  const { config } = parts;
  const limits: ReplayLimits = { count: config.replayCount, ageMs: config.replayAge * 1000, bytes: config.replayBytes };
  if (config.redis) return clusterBackends(parts, limits);
  return localBackends(parts, limits);
}


/** One process alone: state in memory, or in a SQLite file with --data (StateOpenError when it cannot be used). */
function localBackends({ config, local, events, metrics, log }: BackendParts, limits: ReplayLimits): Backends {
  if (!config.data) {
    const state = new MemoryState({ heldBytes: config.queueBytes });
    return {
      state,
      replay: new MemoryReplay(limits),
      delivery: local,
      counters: () => metrics.counters(events.listeners),
      start: async () => {},
      close: async () => state.close(),
    };
  }
  const started = performance.now();
  const dataLog = log.withTag("data");
  const db = openDataFile(config.data, { sync: config.dataSync, log: dataLog });
  // One health for the file: a failed write of either makes /healthz 503, a good write of either clears it.
  const health = new WriteHealth(db.filename);
  let replay: SqliteReplay;
  try {
    replay = new SqliteReplay(db, limits, { health, log: dataLog });
  } catch (error) {
    db.close(true);
    throw error;
  }
  const state = new SqliteState(db, dataLog, health, metrics.dataCommitSeconds);
  const { users, channels, held } = state.counts();
  const ms = (performance.now() - started).toFixed(0);
  log.info(`data    ${config.data}: ${users} users, ${channels} channels, ${held} held (opened in ${ms} ms, sync ${config.dataSync})`);
  return {
    state,
    replay,
    delivery: local,
    counters: () => metrics.counters(events.listeners),
    start: async () => {},
    close: async () => {
      replay.close();
      state.close();
    },
  };
}

async function clusterBackends({ config, local, events, metrics, log }: BackendParts, limits: ReplayLimits): Promise<Backends> {
  const prefix = config.redisPrefix;
  // A Redis Cluster node: keys spread over the shards' hash tags, on ioredis (docs/internals/redis-cluster.md).
  const sharded = await detectCluster(config.redis);
  if (sharded && config.redis.startsWith("rediss:")) {
    throw new StateOpenError("--redis: TLS (rediss://) to a Redis Cluster is not supported yet; reach the cluster over a private network or a TLS tunnel");
  }
  const redis: RedisConnection = sharded
    ? new RedisClusterLink({ seeds: [config.redis], timeoutMs: 2000, log: log.withTag("redis") })
    : new RedisLink({ url: config.redis, timeoutMs: 2000, log: log.withTag("redis") });
  await redis.open();
  try {
    if (!config.redisAllowEviction) await refuseEviction(redis);
    const shards = sharded ? ShardMap.cluster(prefix) : undefined;
    return await clusterOn(redis, prefix, shards, { config, local, events, metrics, log }, limits);
  } catch (error) {
    redis.close();
    throw error;
  }
}

/**
 * Refuses to start (exit 2) on a Redis that may evict webtalk's keys; the policy is read again at
 * every reconnect and lease renewal (`checkEviction`), and an error is logged should it change.
 */
async function refuseEviction(redis: RedisConnection): Promise<void> {
  const risk = await evictionRisk(redis);
  if (risk) throw new StateOpenError(risk);
}

async function clusterOn(
  redis: RedisConnection,
  prefix: string,
  shards: ShardMap | undefined,
  { config, local, events, metrics, log }: BackendParts,
  limits: ReplayLimits,
): Promise<Backends> {
  const nodeId = newSalt().slice(0, 12);
  const state = shards ? await RedisClusterState.open(redis, prefix, nodeId, shards) : await RedisState.open(redis as RedisLink, prefix, nodeId);
  const replay = await RedisReplay.open(redis, shards ?? prefix, limits);
  // Redis may lose webtalk's data under running nodes: checked on every reconnect and every renewal.
  const generation = new GenerationWatch({ state, replay, local, events, log: log.withTag("redis") });
  redis.onReconnect(() => void generation.check().catch(() => undefined));
  const checkEviction = config.redisAllowEviction ? async () => {} : watchEviction(redis, log.withTag("redis"));
  redis.onReconnect(() => void checkEviction().catch(() => undefined));
  const here: PresenceLocal = {
    users: () => local.users(),
    stats: () => metrics.counters(events.listeners),
    replaced: (user) => local.disconnect(user, CloseCode.replaced),
  };
  // Each renewal: the lineage first (it decides what is re-claimed), and the eviction policy.
  const sameData = async () => {
    const same = await generation.check();
    await checkEviction().catch(() => undefined);
    return same;
  };
  const leaseMs = config.lease * 1000;
  const presence: Presence = shards
    ? new RedisClusterPresence(redis, shards, nodeId, leaseMs, here, sameData, config.sessions > 1)
    : new RedisPresence(redis as RedisLink, prefix, nodeId, leaseMs, here, sameData, config.sessions > 1);
  const delivery = new ClusterDelivery({
    redis,
    prefix,
    shards,
    presence,
    local,
    channelsOf: (user) => state.channelsOf(user),
    events,
    metrics,
    log: log.withTag("cluster"),
    checkGeneration: () => generation.check(),
    several: config.sessions > 1,
    limit: config.sessions > 1 ? new ClusterSessionLimit(redis, shards ?? prefix, nodeId, config.sessions, config.duplicate === "reject") : undefined,
  });
  generation.announceThrough(() => delivery.announceDataLoss());
  return {
    state,
    replay,
    delivery,
    numbered: new ClusterNumbering(state.guard, shards ?? prefix, limits),
    counters: async () => sumCounters(await presence.nodeStats()),
    sessions: {
      settled: (user) => delivery.settled(user),
      released: (user) => delivery.released(user),
      elsewhere: (user) => delivery.elsewhere(user),
      admitting: (user, session) => delivery.admitting(user, session),
      closed: (user, session) => delivery.closed(user, session),
    },
    async start() {
      await delivery.start();
      await presence.start();
      const where = shards ? `Redis Cluster (${shards.count} shards)` : "Redis";
      log.info(`cluster node ${presence.nodeId} on ${where}, key prefix ${prefix}`);
    },
    async close() {
      await presence.stop();
      await state.retire().catch(() => undefined);
      redis.close();
    },
  };
}
