import type { ServerWebSocket } from "bun";

/**
 * Finds browsers that stopped reading. A publish that meets backpressure schedules one scan of the
 * connected browsers for the next turn of the event loop (never more than one per turn), so a slow
 * consumer is caught within one turn's worth of messages and healthy traffic pays nothing.
 */
export function createWatchdog<T>(
  browsers: () => Iterable<ServerWebSocket<T>>,
  limit: number,
  onSlow: (ws: ServerWebSocket<T>, buffered: number) => void,
) {
  let scheduled = false;
  const scan = (): void => {
    scheduled = false;
    for (const ws of browsers()) {
      const buffered = ws.getBufferedAmount();
      if (buffered > limit) onSlow(ws, buffered);
    }
  };
  return {
    /** Call with what `publish`/`send` returned: -1 means some socket is backed up. */
    observe(status: number): void {
      if (status !== -1 || scheduled) return;
      scheduled = true;
      setImmediate(scan);
    },
  };
}
