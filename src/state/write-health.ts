// Whether writes to the data file succeed now: the latest write decides, so /healthz follows the disk.

import { StateWriteFailed } from "./state.ts";

/** Shared by the state and the replay log of one data file: either one's failure makes the file unhealthy. */
export class WriteHealth {
  readonly #file: string;
  #problem: string | undefined;

  constructor(file: string) {
    this.#file = file;
  }

  /** The data file and why its writes fail; undefined while they succeed. */
  get problem(): string | undefined {
    return this.#problem;
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
