import type { ConsolaInstance } from "consola";

const WINDOW_MS = 10_000;

/**
 * Warns about something that can happen thousands of times a second without flooding the log: the
 * first occurrence is logged at once, later ones are summed and logged at most once per window, when
 * the window ends — a burst that stops is still reported, even if nothing follows it. `summary` turns
 * the count and the distinct keys of the window into one line.
 */
export function createWindowedWarn<K>(
  log: ConsolaInstance,
  summary: (count: number, keys: ReadonlySet<K>, latest: K) => string,
  now: () => number = Date.now,
  windowMs = WINDOW_MS,
) {
  let lastLogged = -Infinity;
  let unreported = 0;
  let keys = new Set<K>();
  let latest: K | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = (): void => {
    timer = undefined;
    if (unreported === 0) return;
    log.warn(summary(unreported, keys, latest as K));
    lastLogged = now();
    unreported = 0;
    keys = new Set();
  };

  return function report(key: K, count = 1): void {
    unreported += count;
    keys.add(key);
    latest = key;
    if (timer !== undefined) return;
    const wait = lastLogged + windowMs - now();
    if (wait <= 0) return flush();
    // Unref'd: a pending summary never keeps a stopping process alive.
    timer = setTimeout(flush, wait);
    timer.unref?.();
  };
}
