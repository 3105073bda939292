import type { ConsolaInstance } from "consola";
import type { LocalDelivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import { CloseCode } from "../protocol/codes.ts";
import type { RedisState } from "../state/redis.ts";
import type { RedisReplay } from "../state/replay-redis.ts";

export interface GenerationOptions {
  state: RedisState;
  replay: RedisReplay;
  /** This node's browsers: those whose user is gone with the data are closed. */
  local: LocalDelivery;
  events: EventHub;
  log: ConsolaInstance;
}

/** Tells the other nodes of a data loss before this node re-creates the data (the cluster bus). */
export type DataLossAnnouncer = () => Promise<void>;

/** Users looked up at once while re-establishing: bounds the commands in flight, not the total. */
const LOOKUP_BATCH = 1_000;

/**
 * Notices that Redis lost webtalk's data (restarted empty, flushed, restored from a snapshot of
 * other data) and re-establishes it. Until then the state refuses to issue IDs: a browser still
 * logged in as a user of the lost data must never meet a new user's messages. Checked on every
 * reconnect, with every lease renewal, and whenever an ID was refused.
 */
export class GenerationWatch {
  readonly #o: GenerationOptions;
  #checking: Promise<boolean> | undefined;
  #announce: DataLossAnnouncer | undefined;

  constructor(options: GenerationOptions) {
    this.#o = options;
    options.state.onRefused(() => void this.check().catch(() => undefined));
  }

  /** Set once the bus is up. */
  announceThrough(announce: DataLossAnnouncer): void {
    this.#announce = announce;
  }

  /** True while Redis holds this node's data; otherwise re-establishes it first and answers false. */
  check(): Promise<boolean> {
    // One check at a time: a reconnect, a renewal and refused IDs may all ask at once.
    this.#checking ??= this.#check().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #check(): Promise<boolean> {
    if (await this.#o.state.sameGeneration()) return true;
    await this.#reestablish();
    return false;
  }

  async #reestablish(): Promise<void> {
    const { state, replay, events, log } = this.#o;
    const before = state.epoch();
    // First the other nodes, so they close their orphaned browsers before anything of the new data
    // (channel 1 exists again once established) reaches them; a failure here only costs that.
    await this.#announce?.().catch(() => undefined);
    const after = await state.establish();
    await replay.reopen();
    const closed = await this.#closeOrphans();
    state.adopt(after);
    log.error(
      `Redis lost webtalk's data (generation ${before} is gone): closed ${closed} browser(s) whose user no longer exists (4004); ` +
        `backends must create their users and channels again; new epoch ${after}`,
    );
    events.epochChanged(after);
  }

  /** Closes every local browser whose user is not in the state any more; returns how many. */
  async #closeOrphans(): Promise<number> {
    const { state, local } = this.#o;
    const users = [...local.users()];
    let closed = 0;
    for (let i = 0; i < users.length; i += LOOKUP_BATCH) {
      const batch = users.slice(i, i + LOOKUP_BATCH);
      const salts = await Promise.all(batch.map((user) => state.userSalt(user)));
      batch.forEach((user, j) => {
        if (salts[j] !== undefined) return;
        local.disconnect(user, CloseCode.killed);
        closed++;
      });
    }
    return closed;
  }
}
