/** Receives each event payload, in the order events happened. */
export type EventSink = (payload: string) => void;

/**
 * Fans events out to the listening control connections. Each sink bounds its own buffer: the hub
 * only promises every sink every event, in order, while it is registered.
 */
export class EventHub {
  #sinks = new Set<EventSink>();

  emit(payload: string): void {
    for (const sink of this.#sinks) sink(payload);
  }

  /** Registers a sink; returns the function that removes it. */
  add(sink: EventSink): () => void {
    this.#sinks.add(sink);
    return () => void this.#sinks.delete(sink);
  }

  get listeners(): number {
    return this.#sinks.size;
  }
}
