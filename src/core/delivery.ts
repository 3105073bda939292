import type { CloseReason } from "../protocol/codes.ts";

/**
 * What the executor needs from the public transport: who is connected, and ways to reach them.
 * Implemented over Bun's WebSocket topics; every method is a no-op for users with no browser.
 */
export interface Delivery {
  isOnline(user: number): boolean;
  /** How many users have a browser connected. */
  onlineCount(): number;
  /** How many of the channel's members have a browser connected. */
  onlineIn(channel: number): number;
  /** Sends to the user's browser; `offset` numbers it for v2 browsers. Messages arrive in call order. */
  toUser(user: number, message: string, offset: number): void;
  /** Sends to every connected member of the channel, in call order with toUser; returns how many. */
  toChannel(channel: number, message: string, offset: number): number;
  subscribe(user: number, channel: number): void;
  unsubscribe(user: number, channel: number): void;
  /** Closes the user's browser with this code; the user itself stays unless the caller deletes it. */
  disconnect(user: number, reason: CloseReason): void;
}
