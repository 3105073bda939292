// The one interface every state backend implements (memory.ts, sqlite.ts; Redis later), and
// test/state/contract.ts is the suite each of them passes.
// Domain terms only: user IDs, channel IDs and text, never sockets.

/** A value now, or later: the memory backend answers synchronously so the hot path never awaits. */
export type Maybe<T> = T | Promise<T>;

/** The shared backend (Redis) cannot be reached: the command fails fast and may be retried. */
export class BackendUnavailable extends Error {
  override name = "BackendUnavailable";
}

/** Channel 1 exists from the start; every new user joins it while it exists. */
export const GLOBAL_CHANNEL = 1;

export interface StateCounts {
  users: number;
  channels: number;
  /** Held messages across all users. */
  held: number;
}

/** "added" when a join made the user a member, "ok" when it changed nothing (or for a leave). */
export type JoinResult = "added" | "ok" | "no-user" | "no-channel";

/**
 * Guarantees every implementation keeps:
 * - IDs come from nextId (id-clock.ts): each is above the one before and never below its creation time
 *   in microseconds, so they are never reused, not even by a run that lost an earlier run's data.
 * - Each call is atomic: a concurrent reader sees all of a call's effect or none of it.
 * - Calls take effect in the order they are made; callers that need an order between two calls
 *   wait for the first (the control transport runs one connection's commands one at a time).
 * - join and leave are idempotent; deleting a user removes its memberships and held messages.
 * - Held messages keep their order; past `limit` for one user the oldest are dropped first.
 * - A durable implementation has made a call's effect durable before the call answers, so whatever a
 *   caller saw answered (and replied `[ok]` for) is there after a restart, IDs included.
 */
export interface State {
  /** Creates a user with this salt, joins it to the global channel, returns its ID. */
  createUser(salt: string): Maybe<number>;
  /** The user's salt, or undefined when there is no such user. */
  userSalt(user: number): Maybe<string | undefined>;
  /** Deletes the user with its memberships and held messages; false when there was no such user. */
  deleteUser(user: number): Maybe<boolean>;

  createChannel(): Maybe<number>;
  channelExists(channel: number): Maybe<boolean>;
  /** Deletes the channel; returns its former members, or undefined when there was no such channel. */
  deleteChannel(channel: number): Maybe<number[] | undefined>;
  /** Answers "added" when the user was not a member before (the replay log then records its floor). */
  join(channel: number, user: number): Maybe<JoinResult>;
  leave(channel: number, user: number): Maybe<JoinResult>;
  /** The channels the user is a member of, in ascending order. */
  channelsOf(user: number): Maybe<number[]>;
  /** Up to `limit` member IDs greater than `after`, ascending; undefined when there is no such channel. */
  members(channel: number, after: number, limit: number): Maybe<number[] | undefined>;
  /** How many users are in the channel; undefined when there is no such channel. */
  memberCount(channel: number): Maybe<number | undefined>;
  /** Totals for `[stats]`. */
  counts(): Maybe<StateCounts>;

  /** Holds a message for a user who is not connected; returns how many old ones were dropped. */
  hold(user: number, message: string, limit: number): Maybe<number>;
  /** Removes and returns the user's held messages, oldest first. */
  takeHeld(user: number): Maybe<string[]>;

  store(key: string, value: string): Maybe<void>;
  clear(key: string): Maybe<void>;
  /** The stored value, or "" when the key is absent. */
  retrieve(key: string): Maybe<string>;

  /**
   * Whether the backend can serve calls now (a Redis backend pings Redis). Optional: a backend
   * without it (memory) is always available. `/healthz` answers 503 while this answers false, throws,
   * or takes longer than 2 s, so a load balancer stops sending browsers to this instance.
   */
  healthy?(): Maybe<boolean>;

  /**
   * Why the state cannot record changes right now (a `--data` file on a full disk), or undefined
   * when it can. Optional: `/healthz` answers 503 with this text while it is set.
   */
  problem?(): string | undefined;

  /**
   * Names the lifetime of this state's IDs: a new value whenever IDs issued before may be unknown to
   * it (every in-memory start, a new data file, a Redis that lost webtalk's data). A backend that sees
   * it change (in `[stats]`, or the `[epoch]` event after `[listen]`) creates its users again.
   */
  epoch(): Maybe<string>;

  /**
   * True when a join or leave takes more than one call to its backend (a Redis Cluster: the user's
   * shard, then the channel's), so a control connection must not pipeline past one: a later command
   * would run between its steps. Optional: absent means one call (or none).
   */
  readonly stepwise?: boolean;

  close(): Maybe<void>;
}

/**
 * A change the state could not record (a `--data` file on a full disk): nothing was changed, and the
 * message names the file and the cause, so the command that caused it answers `[error] <message>`.
 */
export class StateWriteFailed extends Error {
  override name = "StateWriteFailed";
}

/** A state that cannot be opened as configured (a bad, newer or locked data file): exit code 2. */
export class StateOpenError extends Error {
  override name = "StateOpenError";
}
