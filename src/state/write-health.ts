// Whether writes to the data file succeed now: the latest write decides, so /healthz follows the disk.

import { statSync } from "node:fs";
import { StateWriteFailed } from "./state.ts";

/** Shared by the state and the replay log of one data file: either one's failure makes the file unhealthy. */
export class WriteHealth {
  readonly #file: string;
  #problem: string | undefined;
  /** The file this process opened (device and inode); undefined when it has no path (an in-memory database). */
  readonly #opened: string | undefined;

  constructor(file: string) {
    this.#file = file;
    this.#opened = identity(file);
  }

  /**
   * The data file and why its writes fail or do not last; undefined while they succeed. A file deleted
   * or replaced at its path while in use takes every later write with it (a restart opens what is at the
   * path), so that is a problem too, checked when asked (a health check), not on every write.
   */
  get problem(): string | undefined {
    if (this.#problem !== undefined || this.#opened === undefined) return this.#problem;
    const now = identity(this.#file);
    if (now === this.#opened) return undefined;
    const what = now === undefined ? "deleted" : "replaced by another file";
    return `data file ${this.#file}: ${what} while in use: what is written now will not be in the file a restart opens`;
  }

  succeeded(): void {
    // Read before written: the hot path's commit pays one comparison, not a store.
    if (this.#problem !== undefined) this.#problem = undefined;
  }

  /** Records the failure and returns the error for the command that caused it, naming file and cause. */
  failed(error: unknown): StateWriteFailed {
    const cause = (error as Error).message ?? String(error);
    this.#problem = `data file ${this.#file}: writes fail (${cause})`;
    return new StateWriteFailed(`data file ${this.#file}: write failed, nothing was changed (${cause})`);
  }
}

/** Device and inode of the file at `path`, or undefined when there is none. */
function identity(path: string): string | undefined {
  if (path === "" || path === ":memory:") return undefined;
  try {
    const { dev, ino } = statSync(path, { bigint: true });
    return `${dev}:${ino}`;
  } catch {
    return undefined;
  }
}
