import type { ConsolaInstance } from "consola";
import type { LocalDelivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import { CloseCode } from "../protocol/codes.ts";
import type { Settled, Verdict } from "../state/lineage.ts";
import type { RedisReplay } from "../state/replay-redis.ts";

/** What the watch needs of the state: the lineage's questions (RedisState, RedisClusterState). */
export interface LineageState {
  lineage(): Promise<Verdict>;
  repair(found: Verdict, announce?: () => Promise<void>): Promise<Settled>;
  adopt(generation: string): void;
  onRefused(listener: () => void): void;
  epoch(): string;
}

export interface GenerationOptions {
  state: LineageState;
  replay: RedisReplay;
  /** This node's browsers: every one is closed when the data is discarded. */
  local: LocalDelivery;
  events: EventHub;
  log: ConsolaInstance;
}

/** Tells the other nodes of a data loss before this node discards and re-creates the data (the cluster bus). */
export type DataLossAnnouncer = () => Promise<void>;

/**
 * Notices that Redis can no longer be trusted with webtalk's data (it lost it: restarted empty,
 * flushed, its generation key deleted; or it went back in time: restarted from an older dump, failed
 * over to a lagging replica) and makes the cluster start afresh: the data is discarded once
 * cluster-wide, every browser is closed 4004 (its user is gone), and the backends hear a new epoch.
 * Until then the state refuses every change. Checked on every reconnect, with every lease renewal,
 * and whenever a change was refused.
 */
export class GenerationWatch {
  readonly #o: GenerationOptions;
  #checking: Promise<boolean> | undefined;
  #announce: DataLossAnnouncer | undefined;

  constructor(options: GenerationOptions) {
    this.#o = options;
    options.state.onRefused(() => void this.check().catch((error: Error) => options.log.warn(`could not check Redis's data: ${error.message}`)));
  }

  /** Set once the bus is up. */
  announceThrough(announce: DataLossAnnouncer): void {
    this.#announce = announce;
  }

  /** True while Redis holds this node's data as it left it; otherwise starts afresh first and answers false. */
  check(): Promise<boolean> {
    // One check at a time: a reconnect, a renewal and refused changes may all ask at once.
    this.#checking ??= this.#check().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #check(): Promise<boolean> {
    const { state, replay, events, log } = this.#o;
    const found = await state.lineage();
    if (found.kind === "same") return true;
    // At once: nothing of the untrusted data, nor of the new, may reach a browser of the old.
    let closed = this.#closeAll();
    const settled = await state.repair(found, () => this.#announce?.() ?? Promise.resolve());
    await replay.reopen();
    closed += this.#closeAll();
    state.adopt(settled.generation);
    const what =
      settled.discarded === undefined
        ? "another node discarded webtalk's data"
        : `webtalk's data can no longer be trusted (users killed, memberships left, held messages delivered and offsets used since may be back): discarded it (${settled.discarded} keys)`;
    log.error(
      `${settled.cause}; ${what}; closed ${closed} browser(s) (4004: their users are gone); ` +
        `backends must create their users and channels again; new epoch ${settled.generation}`,
    );
    events.epochChanged(settled.generation);
    return false;
  }

  /** Closes every local browser: its user belongs to data that is gone. Returns how many. */
  #closeAll(): number {
    const { local } = this.#o;
    let closed = 0;
    for (const user of [...local.users()]) {
      local.disconnect(user, CloseCode.killed);
      closed++;
    }
    return closed;
  }
}
