import type { CloseReason } from "../protocol/codes.ts";

/**
 * Tabs (pages that name themselves at upgrade: `?tab=ID`, as /webtalk.js does) that were replaced by a
 * newer login while far behind on reading. Such a WebSocket is cut (1006), not closed with 4002: once
 * Bun is asked to close a socket it keeps the backlog until the peer reads. Its page sees a network
 * loss and logs in again; remembered here, that login is answered with the 4002 it never read, rather
 * than taking the place of the newer tab. Per node, for TTL_MS, at most CAPACITY tabs (oldest go first).
 */
export class ReplacedTabs {
  readonly #tabs = new Map<string, { reason: CloseReason; until: number }>();

  constructor(
    private readonly capacity = CAPACITY,
    private readonly ttlMs = TTL_MS,
  ) {}

  remember(user: number, tab: string, reason: CloseReason, now = Date.now()): void {
    const key = `${user}!${tab}`;
    this.#tabs.delete(key);
    this.#tabs.set(key, { reason, until: now + this.ttlMs });
    this.#expire(now);
    if (this.#tabs.size > this.capacity) this.#tabs.delete(this.#tabs.keys().next().value!);
  }

  /** The close a login of this user from this tab is owed, if it was replaced within TTL_MS. */
  owed(user: number, tab: string, now = Date.now()): CloseReason | undefined {
    const entry = this.#tabs.get(`${user}!${tab}`);
    return entry && entry.until > now ? entry.reason : undefined;
  }

  get size(): number {
    return this.#tabs.size;
  }

  /** Entries are kept in the order they were remembered, each for the same time: the oldest expire first. */
  #expire(now: number): void {
    for (const [key, entry] of this.#tabs) {
      if (entry.until > now) return;
      this.#tabs.delete(key);
    }
  }
}

export const CAPACITY = 10_000;
export const TTL_MS = 60_000;

/** A tab's name as a page gives it (`?tab=`): short and plain, or none. */
export function tabOf(url: URL): string | undefined {
  const tab = url.searchParams.get("tab");
  return tab !== null && /^[A-Za-z0-9_-]{1,64}$/.test(tab) ? tab : undefined;
}
