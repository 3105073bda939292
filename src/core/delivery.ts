import type { CloseReason } from "../protocol/codes.ts";
import type { Maybe } from "../state/state.ts";

/**
 * What the executor and the login rules need from the browsers' side: who is connected, and ways to
 * reach them. One node: Bun's WebSocket topics in this process. Several nodes: the same, reached through
 * the cluster bus, with presence kept in Redis. Every method is a no-op for users with no browser.
 */
export interface Delivery {
  isOnline(user: number): Maybe<boolean>;
  /** How many users have a browser connected. */
  onlineCount(): Maybe<number>;
  /** How many of the channel's members have a browser connected. */
  onlineIn(channel: number): Maybe<number>;
  /** Sends to the user's browser; `offset` numbers it for v2 browsers. Messages arrive in call order. */
  toUser(user: number, message: string, offset: number): Maybe<void>;
  /** Sends to every connected member of the channel, in call order with toUser; returns how many. */
  toChannel(channel: number, message: string, offset: number): Maybe<number>;
  /**
   * The user joined the channel: its browsers follow it. `at`: the channel's offset when the user became
   * a member (its replay floor), told to webtalk.v2 browsers (`#at`) so that a page that hears nothing
   * from the channel before a cut still resumes it.
   */
  subscribe(user: number, channel: number, at?: number): Maybe<void>;
  unsubscribe(user: number, channel: number): Maybe<void>;
  /** Closes the user's browser with this code; the user itself stays unless the caller deletes it. */
  disconnect(user: number, reason: CloseReason): Maybe<void>;
  /**
   * A browser of this node has just proved it is the user: from now on the user is online here, and a
   * browser of theirs elsewhere is closed (4002). Called before the held messages are taken. A
   * cluster counting --sessions across its nodes answers the browser's session number there
   * (session-limit.ts), or rejects with SessionLimitReached. `prepare` runs first, once this node keeps
   * what arrives for the user during the login (a cluster's bus), and the claim waits for it: what it
   * reads (a v2 login's starting points) is older than anything the login could miss.
   */
  claim(user: number, prepare?: () => Maybe<void>): Maybe<number | void>;
  /** Undoes a claim whose login was then refused; `session`: what the claim answered. */
  unclaim(user: number, session?: number): Maybe<void>;
}

/** The browsers of this process, reached without waiting: the public transport's side of Delivery. */
export interface LocalDelivery extends Delivery {
  isOnline(user: number): boolean;
  onlineCount(): number;
  onlineIn(channel: number): number;
  toUser(user: number, message: string, offset: number): void;
  toChannel(channel: number, message: string, offset: number): number;
  subscribe(user: number, channel: number, at?: number): void;
  unsubscribe(user: number, channel: number): void;
  disconnect(user: number, reason: CloseReason): void;
  claim(user: number, prepare?: () => Maybe<void>): Maybe<void>;
  unclaim(user: number): void;
  /** Closes the user's browser numbered `session` by its cluster claim; false when it is not here (session-limit.ts). */
  closeSession?(user: number, session: number, reason: CloseReason): boolean;
  /** The session numbers of the user's browsers here, oldest first (those a cluster claim numbered). */
  sessionsOf?(user: number): number[];
  /** Makes the user's browser here follow exactly these channels (a resync after missed bus messages). */
  follow(user: number, channels: number[]): void;
  /**
   * The browser just admitted for `user` is handed the shouts that reached this node while its login
   * was in flight (ArrivalShouts): those of channels it follows; `lost` when some were dropped.
   */
  lateShouts?(user: number, late: { shouts: { c: number; m: string; o: number }[]; lost: boolean }): void;
  /** The users with a browser connected here. */
  users(): Iterable<number>;
  /**
   * After this node missed bus messages: tells each webtalk.v2 browser here `#gap` for its whisper
   * stream and every channel it follows live, since what was published meanwhile never reached it.
   */
  gapAll(): void;
}
