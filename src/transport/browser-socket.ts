/**
 * What the browser sessions use of a browser's connection: Bun's ServerWebSocket has it, and so does an
 * SSE stream (SseSession), so both go through one login and session code.
 */
export interface BrowserSocket<T> {
  readonly data: T;
  /** The topics subscribed. */
  readonly subscriptions: string[];
  /** -1 when the text was queued behind unread bytes, 0 when dropped, else bytes sent. */
  send(text: string): number;
  subscribe(topic: string): void;
  isSubscribed(topic: string): boolean;
  unsubscribe(topic: string): void;
  close(code: number, reason: string): void;
  /** Ends it at once, unread bytes dropped. */
  terminate(): void;
  /** Bytes queued to the browser, unread. */
  getBufferedAmount(): number;
}
