// What a node's presence (presence.ts on one Redis, redis-cluster-presence.ts on a Redis Cluster)
// remembers between lease renewals, and how it reads the other nodes' counters.

/** The users this node claimed, the releases Redis did not take, and who hears of a reclaim. */
export class PresenceBook {
  /**
   * Users whose release failed (Redis away): they would look online here for as long as this node
   * lives, so each renewal releases them again, unless they were claimed here again meanwhile.
   */
  readonly #unreleased = new Set<number>();
  /** Users this node claimed and has not released: what Redis should say is online here. */
  readonly #claimed = new Set<number>();
  readonly #reclaimListeners: (() => void)[] = [];

  /** The user is being claimed here: a release still owed for it is moot. */
  claiming(user: number): void {
    this.#unreleased.delete(user);
    this.#claimed.add(user);
  }

  releasing(user: number): void {
    this.#claimed.delete(user);
  }

  /** A release Redis did not take is owed, unless the user was claimed here again meanwhile (that claim was sent after it). */
  releaseFailed(user: number): void {
    if (!this.#claimed.has(user)) this.#unreleased.add(user);
  }

  isClaimed(user: number): boolean {
    return this.#claimed.has(user);
  }

  /** Sends the owed releases again, each checked just before it: a claim made since is sent after it, so it stands. */
  async releaseAgain(release: (user: number) => Promise<unknown>): Promise<void> {
    for (const user of [...this.#unreleased]) {
      if (!this.#unreleased.delete(user)) continue;
      await release(user);
    }
  }

  onReclaimed(listener: () => void): void {
    this.#reclaimListeners.push(listener);
  }

  /** This node claimed its users again (a lapse or an outage): they may have missed joins. */
  reclaimed(): void {
    for (const listener of this.#reclaimListeners) listener();
  }
}

/** NODE_STATS's reply (node, its counters as a flat list, …) as one record per node, this node's `own` first. */
export function parseNodeStats(raw: (string | string[])[], nodeId: string, own: Record<string, number>): Record<string, number>[] {
  const out: Record<string, number>[] = [own];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i] === nodeId) continue;
    const fields = raw[i + 1] as string[];
    const stats: Record<string, number> = {};
    for (let j = 0; j < fields.length; j += 2) stats[fields[j]!] = Number(fields[j + 1]);
    out.push(stats);
  }
  return out;
}
