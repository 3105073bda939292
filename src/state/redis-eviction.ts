import type { ConsolaInstance } from "consola";
import type { RedisConnection } from "./redis-connection.ts";
import { BackendUnavailable } from "./state.ts";

/** The one maxmemory-policy under which Redis never drops a key to make room. */
const SAFE_POLICY = "noeviction";

/**
 * Why Redis may drop webtalk's keys, or undefined when it will not. Every policy but noeviction may:
 * allkeys-* any key (users, ID counters, the generation: IDs handed out again reach the wrong browser);
 * volatile-* the keys with a TTL, and webtalk's node leases, node stats and replay windows have one (an
 * evicted lease makes that node's users look offline: their whispers are held, not delivered).
 * Throws BackendUnavailable when Redis cannot be reached.
 */
export async function evictionRisk(redis: RedisConnection): Promise<string | undefined> {
  let policies: (string | undefined)[];
  try {
    // On a Redis Cluster every master holds some of the keys: each one's policy counts.
    policies = (await redis.everyMaster("CONFIG", ["GET", "maxmemory-policy"])).map(policyOf);
  } catch (error) {
    if (error instanceof BackendUnavailable) throw error;
    return unreadable((error as Error).message);
  }
  if (policies.some((p) => p === undefined)) return unreadable("no value");
  const policy = policies.find((p) => p !== SAFE_POLICY);
  if (policy === undefined) return undefined;
  return (
    `Redis maxmemory-policy is ${policy}: Redis may evict webtalk's keys (users, ID counters, leases), and a message could ` +
    `then reach the wrong browser; set maxmemory-policy ${SAFE_POLICY}, or pass --redis-allow-eviction to accept the risk`
  );
}

/**
 * Reads the policy again each time it is called (every reconnect and every lease renewal: CONFIG SET
 * changes it without any reconnect) and logs one error line when it turns to one that may evict,
 * not one per check; one info line when it is safe again. A read that fails is left to the next one.
 */
export function watchEviction(redis: RedisConnection, log: ConsolaInstance): () => Promise<void> {
  let reported: string | undefined;
  return async () => {
    const risk = await evictionRisk(redis);
    if (risk !== undefined && risk !== reported) log.error(`Redis's configuration changed under this node: ${risk}`);
    if (risk === undefined && reported !== undefined) log.info("Redis maxmemory-policy is noeviction again");
    reported = risk;
  };
}

function unreadable(why: string): string {
  return (
    `cannot read Redis maxmemory-policy (CONFIG GET: ${why}): check that it is ${SAFE_POLICY}, ` +
    `then pass --redis-allow-eviction to start without reading it`
  );
}

/** CONFIG GET answers a flat [name, value] list (RESP2) or a map (RESP3). */
function policyOf(reply: unknown): string | undefined {
  if (Array.isArray(reply)) return typeof reply[1] === "string" ? reply[1] : undefined;
  if (reply && typeof reply === "object") {
    const value = (reply as Record<string, unknown>)["maxmemory-policy"];
    return typeof value === "string" ? value : undefined;
  }
  return undefined;
}
