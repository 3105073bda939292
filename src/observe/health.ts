import type { State } from "../state/state.ts";

/** The body of `GET /healthz`. */
export interface Health {
  /** "ok" answers 200; "unavailable" answers 503, so a load balancer takes this instance out. */
  status: "ok" | "unavailable";
  version: string;
  uptime_s: number;
  /** Only for a state backend that can be unreachable (see `State.healthy`). */
  state?: "reachable" | "unreachable";
  /** Why the state cannot record changes (e.g. "data file /var/lib/webtalk.db: writes fail (…)"); answers 503. */
  problem?: string;
}

/** A backend that has not answered by then counts as unreachable: a health check must answer promptly. */
export const STATE_CHECK_MS = 2_000;

export interface HealthOptions {
  state: State;
  version: string;
  startedAt: number;
  /** How long the backend has to answer (STATE_CHECK_MS). */
  timeoutMs?: number;
}

/** Checks the state backend's reachability (when it can tell) and reports it with version and uptime. */
export async function checkHealth({ state, version, startedAt, timeoutMs = STATE_CHECK_MS }: HealthOptions): Promise<Health> {
  const base = { version, uptime_s: Math.floor((Date.now() - startedAt) / 1000) };
  const problem = state.problem?.();
  if (problem !== undefined) return { status: "unavailable", ...base, problem };
  if (!state.healthy) return { status: "ok", ...base };
  const reachable = await within(timeoutMs, () => state.healthy!());
  return { status: reachable ? "ok" : "unavailable", ...base, state: reachable ? "reachable" : "unreachable" };
}

/** True when `check` answers true within `ms`; false when it answers false, throws, or is late. */
async function within(ms: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([Promise.resolve().then(check), late]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
