// What nodes tell each other over Redis pub/sub. Pure: values in, strings out, and back.

export type BusMessage =
  /** A whisper for the user's browser, wherever it is. `t`: when the sending node took it (see `busStamp`). */
  | { k: "u"; u: number; m: string; t?: number; o: number }
  /** A shout to every node's browsers in the channel. */
  | { k: "c"; c: number; m: string; t?: number; o: number }
  /** Subscribe / unsubscribe the user's browser to a channel. */
  | { k: "s" | "x"; u: number; c: number; o?: number }
  /** Close the user's browser with close code `r`; `x` names a node that must not (the one that claimed the user). */
  | { k: "d"; u: number; r: number; x?: string }
  /** Close the user's browser number `s` on this node (session-limit.ts): the oldest past --sessions. */
  | { k: "q"; u: number; s: number }
  /** A `[listen]` event for every node's listeners. */
  | { k: "e"; p: string }
  /**
   * A node found that Redis lost webtalk's data, before re-creating it: every node checks its own
   * generation (closing its browsers of users that are gone) before it applies what follows.
   */
  | { k: "g" };

// Where each message travels (Redis pub/sub channels under the key prefix): `u`, `c`, `s`, `x`, `d` and `q`
// on the node channel of the node that hosts the browser (`to:NODE`, route-redis.ts), so a node hears
// only of its own browsers; `e` on the events channel, which a node subscribes to only while it has a
// `[listen]` connection; `g` on the cluster-wide channel every node hears.

/** The cluster-wide channel: what every node must hear (the data-loss notice). */
export function busChannel(prefix: string): string {
  return `${prefix}bus`;
}

/** The channel of `[listen]` events: only nodes with listeners subscribe. */
export function eventsChannel(prefix: string): string {
  return `${prefix}events`;
}

export function encodeBus(message: BusMessage): string {
  return JSON.stringify(message);
}

/**
 * A numbered message up to its offset: `head + offset + "}"` is its encodeBus text. Redis numbers the
 * message and publishes it in one script, so it completes the text; the offset is the last field so
 * that Lua never formats an ID (a 16-digit one would lose digits) or escapes a text.
 */
export function encodeBusHead(message: { k: "u"; u: number; m: string; t: number } | { k: "c"; c: number; m: string; t: number }): string {
  return `${JSON.stringify(message).slice(0, -1)},"o":`;
}

/**
 * The sending node's wall clock in milliseconds, with a fraction: the receiving node observes its delivery
 * lag against it (webtalk_cluster_delivery_lag_seconds), so a skew between the hosts' clocks adds to it.
 */
export function busStamp(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000;
}

/** Parses a bus message; undefined for anything malformed (the bus is shared: never trust it blindly). */
export function decodeBus(text: string): BusMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const m = value as Record<string, unknown>;
  const int = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v);
  switch (m.k) {
    case "u":
      return int(m.u) && typeof m.m === "string" && int(m.o) && stamp(m.t) ? (m as BusMessage) : undefined;
    case "c":
      return int(m.c) && typeof m.m === "string" && int(m.o) && stamp(m.t) ? (m as BusMessage) : undefined;
    case "s":
    case "x":
      // `o` (a join's offset, for #at) is optional: a node of an older version sends none.
      return int(m.u) && int(m.c) && (m.o === undefined || int(m.o)) ? (m as BusMessage) : undefined;
    case "d":
      return int(m.u) && int(m.r) && (m.x === undefined || typeof m.x === "string") ? (m as BusMessage) : undefined;
    case "q":
      return int(m.u) && int(m.s) ? (m as BusMessage) : undefined;
    case "e":
      return typeof m.p === "string" ? (m as BusMessage) : undefined;
    case "g":
      return { k: "g" };
    default:
      return undefined;
  }
}

/** A send stamp is optional: a node of an older version sends none. */
function stamp(t: unknown): boolean {
  return t === undefined || (typeof t === "number" && Number.isFinite(t));
}
