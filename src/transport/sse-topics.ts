import { dataLines, parseNumbered } from "../protocol/sse.ts";
import type { SseSession } from "./sse-session.ts";

/**
 * Fan-out to SSE streams, by the same topic names the WebSocket browsers use with Bun's native pub/sub
 * (`U<ID>`, `C<ID>`), which cannot reach a streamed HTTP response. WebSocket delivery never looks here
 * unless some SSE stream is subscribed (`size`).
 */
export class SseTopics {
  readonly #topics = new Map<string, Set<SseSession>>();

  /** Topics with at least one stream. */
  get size(): number {
    return this.#topics.size;
  }

  subscribe(topic: string, session: SseSession): void {
    const set = this.#topics.get(topic);
    if (set) set.add(session);
    else this.#topics.set(topic, new Set([session]));
  }

  unsubscribe(topic: string, session: SseSession): void {
    const set = this.#topics.get(topic);
    if (set?.delete(session) && set.size === 0) this.#topics.delete(topic);
  }

  count(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /**
   * Sends a numbered v2 text to every stream of the topic, framed once (only each event's id differs).
   * Like Bun's `publish`: -1 when some stream has unread bytes queued (the watchdog then looks), else 1.
   */
  publish(topic: string, v2: string): number {
    const set = this.#topics.get(topic);
    const message = set && parseNumbered(v2);
    if (!message) return 0;
    const data = dataLines(message.text);
    let status = 1;
    // A stream closed meanwhile (too far behind) leaves the set; a Set's iteration allows that.
    for (const session of set) if (session.deliver(message.source, message.offset, data) === -1) status = -1;
    return status;
  }
}
