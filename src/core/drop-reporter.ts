import type { ConsolaInstance } from "consola";

const WINDOW_MS = 10_000;

/**
 * Logs dropped held messages at warn level without flooding: the first drop is logged at once, later
 * ones are summed and logged at most once per window (on the next drop after the window has passed).
 */
export function createDropReporter(log: ConsolaInstance, now: () => number = Date.now) {
  let lastLogged = -Infinity;
  let unreported = 0;
  let users = new Set<number>();
  return function reportDrop(user: number, count: number): void {
    unreported += count;
    users.add(user);
    const t = now();
    if (t - lastLogged < WINDOW_MS) return;
    log.warn(
      `held-message limit reached: dropped ${unreported} oldest message(s) for ${users.size} user(s) (latest: user ${user})`,
    );
    lastLogged = t;
    unreported = 0;
    users = new Set();
  };
}
