/** Rejects when `promise` has not settled within `ms`: every wait in the benchmark is bounded. */
export function within<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
