import type { Maybe } from "../state/state.ts";

/** Applies `fn` now when the value is ready, later when it is a promise: the memory path never awaits. */
export function then<T, R>(value: Maybe<T>, fn: (value: T) => Maybe<R>): Maybe<R> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}

/** Waits for every value that is a promise; stays synchronous when none is. */
export function all<T>(values: Maybe<T>[]): Maybe<T[]> {
  return values.some((v) => v instanceof Promise) ? Promise.all(values) : (values as T[]);
}

/**
 * The same function, with a throw turned into a rejected promise: callers then have one failure path
 * (the transports answer `[error] internal error` or close the login) for a state that fails now,
 * as a full disk makes the SQLite state do, or later.
 */
export function rejectingThrows<A, B, R>(fn: (a: A, b: B) => Maybe<R>): (a: A, b: B) => Maybe<R> {
  // Two fixed parameters rather than rest and spread: this wraps every control command.
  return (a, b) => {
    try {
      return fn(a, b);
    } catch (error) {
      return Promise.reject(error);
    }
  };
}
