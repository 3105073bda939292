import type { ConsolaInstance } from "consola";
import { createWindowedWarn } from "../observe/windowed-warn.ts";
import { BackendUnavailable, StateWriteFailed } from "./state.ts";

/** What a command answers while Redis refuses writes for want of memory. */
export const BACKEND_FULL = "backend full: Redis refused the write (maxmemory)";

/**
 * Whether a Redis link (one server or a cluster) is reachable and has room, and the lines an operator
 * reads about it: one when it goes away, one when it is back, and a full Redis's refusals counted per
 * window rather than logged one per command (thousands a second).
 */
export class LinkHealth {
  #down = false;
  /** Set when Redis refused a write for want of memory; cleared once a write goes through. */
  #full = false;
  readonly #warnFull: (key: string) => void;

  constructor(
    private readonly log: ConsolaInstance,
    /** How the lines name the backend: "Redis", "Redis Cluster". */
    private readonly name: string,
  ) {
    this.#warnFull = createWindowedWarn(
      log,
      (count) =>
        `${name} is full (maxmemory reached, noeviction): refused ${count} write(s); commands answer [error] ${BACKEND_FULL} ` +
        `and /healthz answers 503 until it has room (raise maxmemory, or free memory)`,
    );
  }

  get down(): boolean {
    return this.#down;
  }

  get full(): boolean {
    return this.#full;
  }

  /** A write went through: Redis has room again. */
  roomAgain(): void {
    this.#full = false;
  }

  /** An answer came back: the link is up. */
  reached(): void {
    if (!this.#down) return;
    this.#down = false;
    this.log.info(`${this.name} is reachable again`);
  }

  /** The link failed: commands answer `[error] backend unavailable` until `reached`. */
  failed(error: BackendUnavailable): BackendUnavailable {
    if (!this.#down) {
      this.#down = true;
      this.log.warn(`${error.message}; commands answer [error] backend unavailable until it is back`);
    }
    return error;
  }

  /** Redis's OOM refusal is the backend being full, not a bug: a StateWriteFailed the command answers with. */
  serverError(error: Error): Error {
    if (!String(error.message).startsWith("OOM")) return error;
    this.#full = true;
    this.#warnFull("oom");
    return new StateWriteFailed(BACKEND_FULL);
  }
}

/** `promise`, or BackendUnavailable naming `name` when it has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BackendUnavailable(`${name} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
