import type { State } from "../state/state.ts";

/** The body of `GET /healthz`. */
export interface Health {
  /** "ok" answers 200; "unavailable" answers 503, so a load balancer takes this instance out. */
  status: "ok" | "unavailable";
  version: string;
  uptime_s: number;
  /** Only for a state backend that can be unreachable (see `State.healthy`). */
  state?: "reachable" | "unreachable";
  /**
   * Why this instance cannot serve: the state cannot record changes (e.g. "data file
   * /var/lib/webtalk.db: writes fail (…)"), or it is starting or shutting down; answers 503.
   */
  problem?: string;
}

/** What a server that does not serve (yet, or any more) is doing: it is neither healthy nor ready. */
export type NotServing = "starting" | "stopping";

/** The answer of `GET /readyz`: whether to send traffic to this instance now, and if not, why, in one line. */
export interface Readiness {
  ready: boolean;
  reason: string;
}

/** Why a server that is not serving cannot: the text /healthz and /readyz answer with. */
const NOT_SERVING: Record<NotServing, string> = {
  starting: "starting: the state is not open yet",
  stopping: "shutting down",
};

/** The health of a server that is starting or stopping: unavailable, saying which. */
export function notServing(lifecycle: NotServing, version: string, startedAt: number): Health {
  return { status: "unavailable", version, uptime_s: Math.floor((Date.now() - startedAt) / 1000), problem: NOT_SERVING[lifecycle] };
}

/**
 * `/readyz` from `/healthz`'s report: ready while serving and healthy (the state open, reachable, its
 * writes working), else the one-line reason: what a load balancer or a rolling deploy waits for.
 */
export function readiness(health: Health): Readiness {
  if (health.status === "ok") return { ready: true, reason: "ready" };
  const reason = health.problem ?? (health.state === "unreachable" ? "the state backend is unreachable" : "unavailable");
  // One line, whatever the underlying error's text holds.
  return { ready: false, reason: reason.replace(/\s*\n\s*/g, " ") };
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
  // Reachability first: a backend's check may tell whether its problem is over (a full Redis's probe).
  const reachable = state.healthy ? await within(timeoutMs, () => state.healthy!()) : undefined;
  const reach = reachable === undefined ? {} : { state: reachable ? ("reachable" as const) : ("unreachable" as const) };
  if (reachable === false) return { status: "unavailable", ...base, ...reach };
  const problem = state.problem?.();
  if (problem !== undefined) return { status: "unavailable", ...base, ...reach, problem };
  return { status: "ok", ...base, ...reach };
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
