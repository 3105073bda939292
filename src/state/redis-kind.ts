import type { RedisLink } from "./redis-link.ts";
import { BackendUnavailable } from "./state.ts";

/**
 * Why webtalk cannot run on the Redis at the end of `redis`, or undefined when it can. A Redis Cluster
 * node is refused at startup with that reason: webtalk's scripts touch keys in many hash slots, so on
 * a cluster the first one fails with CROSSSLOT (or worse, runs on some keys only). Redis Cluster is
 * designed in docs/internals/redis-cluster.md and not built yet. Throws BackendUnavailable when Redis
 * cannot be reached.
 */
export async function clusterRefusal(redis: RedisLink): Promise<string | undefined> {
  let info: string;
  try {
    info = String(await redis.call("CLUSTER", ["INFO"]));
  } catch (error) {
    if (error instanceof BackendUnavailable) throw error;
    // "ERR This instance has cluster support disabled": a single Redis server, what webtalk needs.
    // A server or proxy that does not know CLUSTER at all is not a cluster either.
    return undefined;
  }
  if (!/^cluster_state:/m.test(info)) return undefined;
  return (
    "--redis points at a Redis Cluster node: webtalk needs a single Redis server (a replica may stand by). " +
    "Redis Cluster support is not built yet: see docs/internals/redis-cluster.md"
  );
}
