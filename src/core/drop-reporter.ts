import type { ConsolaInstance } from "consola";
import { createWindowedWarn } from "../observe/windowed-warn.ts";

/** Logs dropped held messages at warn level without flooding (see `createWindowedWarn`). */
export function createDropReporter(log: ConsolaInstance, now: () => number = Date.now, windowMs?: number) {
  return createWindowedWarn<number>(
    log,
    (count, users, latest) => `held-message limit reached: dropped ${count} oldest message(s) for ${users.size} user(s) (latest: user ${latest})`,
    now,
    windowMs,
  );
}
