/** Browsers looked at per turn of the event loop on top of the suspects: the watchdog's cost per turn. */
const SWEEP_PER_TURN = 256;

/**
 * Finds browsers that stopped reading, at a cost that does not grow with the number of browsers. A
 * publish that meets backpressure (Bun does not say whose) schedules one scan for the next turn of the
 * event loop (never more than one per turn). A scan rechecks the suspects — browsers seen a quarter of
 * the way to the limit, until they catch up or leave — and moves a sweep over the others on by SWEEP_PER_TURN, so each
 * browser is looked at within ⌈browsers / SWEEP_PER_TURN⌉ backpressured turns, and a scan costs the
 * suspects plus a constant. Meanwhile Bun's own hard cap (a multiple of the limit) bounds what one
 * browser can hold, and healthy traffic pays nothing.
 */
export function createWatchdog<W extends { getBufferedAmount(): number }>(limit: number, onSlow: (ws: W, buffered: number) => void) {
  /** Watched browsers, in no order; `slots` finds one's index, so removal is a swap with the last. */
  const watched: W[] = [];
  const slots = new Map<W, number>();
  const suspects = new Set<W>();
  let cursor = 0;
  let scheduled = false;

  // Only browsers a quarter of the way to the limit are suspects: under heavy fan-out many healthy ones
  // have a few bytes queued for a moment, and tracking those would churn the set for nothing.
  const suspectAt = limit / 4;

  /** Looks at one browser: closes it past the limit, remembers it while it is well behind. */
  const check = (ws: W): void => {
    const buffered = ws.getBufferedAmount();
    if (buffered > limit) {
      suspects.delete(ws);
      onSlow(ws, buffered);
    } else if (buffered > suspectAt) suspects.add(ws);
    else if (suspects.size > 0) suspects.delete(ws);
  };

  const scan = (): void => {
    scheduled = false;
    for (const ws of suspects) check(ws);
    for (let n = Math.min(SWEEP_PER_TURN, watched.length); n > 0; n--) {
      if (cursor >= watched.length) cursor = 0;
      check(watched[cursor++]!);
    }
  };

  return {
    /** Starts watching a logged-in browser. */
    add(ws: W): void {
      if (slots.has(ws)) return;
      slots.set(ws, watched.length);
      watched.push(ws);
    },
    /** Stops watching it (it left, or was closed). */
    remove(ws: W): void {
      suspects.delete(ws);
      const slot = slots.get(ws);
      if (slot === undefined) return;
      slots.delete(ws);
      const last = watched.pop()!;
      if (last !== ws) {
        watched[slot] = last;
        slots.set(last, slot);
      }
    },
    /** Call with what `publish`/`send` returned: -1 means some socket is backed up. */
    observe(status: number): void {
      if (status !== -1 || scheduled) return;
      scheduled = true;
      setImmediate(scan);
    },
  };
}
