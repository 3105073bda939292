import { newSalt } from "../core/secret.ts";
import { HeldMessages } from "./held-memory.ts";
import { nextId } from "./id-clock.ts";
import { SortedIds } from "./sorted-ids.ts";
import { GLOBAL_CHANNEL, type JoinResult, type State, type StateCounts } from "./state.ts";

interface User {
  salt: string;
  /** Ascending; a SortedIds costs ~70 bytes for a few channels where a Set costs ~260 (measured), per user. */
  channels: SortedIds;
}

export interface MemoryStateOptions {
  /** Bytes of held messages across all users (default: unbounded). */
  heldBytes?: number;
}

/** Everything in this process's memory: fast, and gone at exit, as in the original webtalk. */
export class MemoryState implements State {
  #users = new Map<number, User>();
  /** Members per channel, ascending, so `[members]` pages cost in proportion to the page. */
  #channels = new Map<number, SortedIds>([[GLOBAL_CHANNEL, new SortedIds()]]);
  #kv = new Map<string, string>();
  /** The last IDs issued (0: none yet): a restart forgets them, so nextId's clock keeps new ones above. */
  #lastUser = 0;
  #lastChannel = GLOBAL_CHANNEL;
  #held: HeldMessages;
  /** Every start is a new epoch: nothing of an earlier run is known. */
  readonly #epoch = newSalt().slice(0, 12);

  constructor({ heldBytes = Number.POSITIVE_INFINITY }: MemoryStateOptions = {}) {
    this.#held = new HeldMessages(heldBytes);
  }

  createUser(salt: string): number {
    const id = (this.#lastUser = nextId(this.#lastUser));
    const user: User = { salt, channels: new SortedIds() };
    this.#users.set(id, user);
    const global = this.#channels.get(GLOBAL_CHANNEL);
    if (global) {
      global.add(id);
      user.channels.add(GLOBAL_CHANNEL);
    }
    return id;
  }

  userSalt(user: number): string | undefined {
    return this.#users.get(user)?.salt;
  }

  deleteUser(id: number): boolean {
    const user = this.#users.get(id);
    if (!user) return false;
    for (const channel of user.channels.all()) this.#channels.get(channel)?.delete(id);
    this.#held.take(id);
    this.#users.delete(id);
    return true;
  }

  createChannel(): number {
    const id = (this.#lastChannel = nextId(this.#lastChannel));
    this.#channels.set(id, new SortedIds());
    return id;
  }

  channelExists(channel: number): boolean {
    return this.#channels.has(channel);
  }

  deleteChannel(channel: number): number[] | undefined {
    const members = this.#channels.get(channel);
    if (!members) return undefined;
    const ids = members.all();
    for (const id of ids) this.#users.get(id)?.channels.delete(channel);
    this.#channels.delete(channel);
    return ids;
  }

  join(channel: number, id: number): JoinResult {
    const members = this.#channels.get(channel);
    if (!members) return "no-channel";
    const user = this.#users.get(id);
    if (!user) return "no-user";
    if (members.has(id)) return "ok";
    members.add(id);
    user.channels.add(channel);
    return "added";
  }

  leave(channel: number, id: number): JoinResult {
    const members = this.#channels.get(channel);
    if (!members) return "no-channel";
    const user = this.#users.get(id);
    if (!user) return "no-user";
    members.delete(id);
    user.channels.delete(channel);
    return "ok";
  }

  channelsOf(id: number): number[] {
    return this.#users.get(id)?.channels.all() ?? [];
  }

  members(channel: number, after: number, limit: number): number[] | undefined {
    const members = this.#channels.get(channel);
    if (!members) return undefined;
    return members.page(after, limit);
  }

  memberCount(channel: number): number | undefined {
    return this.#channels.get(channel)?.size;
  }

  counts(): StateCounts {
    return { users: this.#users.size, channels: this.#channels.size, held: this.#held.count };
  }

  hold(id: number, message: string, limit: number): number {
    return this.#users.has(id) ? this.#held.hold(id, message, limit) : 0;
  }

  takeHeld(id: number): string[] {
    return this.#held.take(id);
  }

  store(key: string, value: string): void {
    this.#kv.set(key, value);
  }

  clear(key: string): void {
    this.#kv.delete(key);
  }

  retrieve(key: string): string {
    return this.#kv.get(key) ?? "";
  }

  epoch(): string {
    return this.#epoch;
  }

  close(): void {}
}
