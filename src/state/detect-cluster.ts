import { RedisClient } from "bun";
import { redactUrl } from "./redis-link.ts";
import { BackendUnavailable } from "./state.ts";

/**
 * Whether the Redis at `url` is a Redis Cluster node (CLUSTER INFO says `cluster_enabled:1`), so `--redis`
 * can take either a single Redis or any node of a cluster. Throws BackendUnavailable when it cannot ask.
 */
export async function detectCluster(url: string, timeoutMs = 2_000): Promise<boolean> {
  const client = new RedisClient(url, { connectionTimeout: timeoutMs, maxRetries: 0, enableOfflineQueue: false });
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([client.connect(), late]);
    const info = String(await Promise.race([client.send("CLUSTER", ["INFO"]), late]));
    return /cluster_enabled:1/.test(info) || /cluster_state:/.test(info);
  } catch (error) {
    // A single Redis answers CLUSTER INFO with this error: it is an answer, not a failure to ask.
    if (String((error as Error).message).includes("cluster support disabled")) return false;
    throw new BackendUnavailable(`cannot reach Redis at ${redactUrl(url)}: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
    client.close();
  }
}
