import type { Maybe } from "../state/state.ts";

/** Applies `fn` now when the value is ready, later when it is a promise: the memory path never awaits. */
export function then<T, R>(value: Maybe<T>, fn: (value: T) => Maybe<R>): Maybe<R> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}

/** Waits for every value that is a promise; stays synchronous when none is. */
export function all<T>(values: Maybe<T>[]): Maybe<T[]> {
  return values.some((v) => v instanceof Promise) ? Promise.all(values) : (values as T[]);
}
