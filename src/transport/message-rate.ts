/**
 * A token bucket per browser: `rate` messages per second on average, bursts of up to `rate`. Two
 * numbers per connection and a subtraction per message, so checking it costs the hot path nothing
 * that grows with traffic. A browser past it is misbehaving: each of its messages is a JS call here
 * and, with --upstream, an event for every listener.
 */
export interface RateBucket {
  /** Messages the browser may still send now. */
  tokens: number;
  /** performance.now() when `tokens` was last topped up. */
  at: number;
}

export function fullBucket(rate: number, now: number): RateBucket {
  return { tokens: rate, at: now };
}

/** Takes one message from the bucket; false when the browser is over `rate` (0 never is). */
export function takeMessage(bucket: RateBucket, rate: number, now: number): boolean {
  if (rate === 0) return true;
  if (bucket.tokens < 1) {
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) * rate) / 1000);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
  }
  bucket.tokens--;
  return true;
}
