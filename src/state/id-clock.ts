// Where user and channel IDs come from, in every state backend.
//
// An ID is never smaller than the time it was issued at, in microseconds since the Unix epoch, and
// always larger than the one before it. So a server that restarted without its data (memory mode, a
// new data file, a Redis that lost webtalk's keys or was restored from an old snapshot) issues only
// IDs above every ID an earlier run could have issued: a backend that still holds an old ID gets
// "no such user", never somebody else. This holds while the clock does not step back and fewer than
// a million IDs are issued per second on average (a busy server issues a few hundred thousand at
// most). The IDs are 16 digits, safe integers until the year 2255.

/** The next ID after `last` (0 when none was issued yet) at time `nowMs` (milliseconds). */
export function nextId(last: number, nowMs: number = Date.now()): number {
  return Math.max(last + 1, Math.floor(nowMs) * 1000);
}
