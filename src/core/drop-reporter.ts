import type { ConsolaInstance } from "consola";

const WINDOW_MS = 10_000;

/**
 * Logs dropped held messages at warn level without flooding: the first drop is logged at once, later
 * ones are summed and logged at most once per window, when the window ends: a burst that stops is
 * still reported, even if no drop ever follows it.
 */
export function createDropReporter(log: ConsolaInstance, now: () => number = Date.now, windowMs = WINDOW_MS) {
  let lastLogged = -Infinity;
  let unreported = 0;
  let users = new Set<number>();
  let latest = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = (): void => {
    timer = undefined;
    if (unreported === 0) return;
    log.warn(
      `held-message limit reached: dropped ${unreported} oldest message(s) for ${users.size} user(s) (latest: user ${latest})`,
    );
    lastLogged = now();
    unreported = 0;
    users = new Set();
  };

  return function reportDrop(user: number, count: number): void {
    unreported += count;
    users.add(user);
    latest = user;
    if (timer !== undefined) return;
    const wait = lastLogged + windowMs - now();
    if (wait <= 0) return flush();
    // Unref'd: a pending summary never keeps a stopping process alive.
    timer = setTimeout(flush, wait);
    timer.unref?.();
  };
}
