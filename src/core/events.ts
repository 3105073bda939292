/** Receives each event payload, in the order events happened. */
export type EventSink = (payload: string) => void;

/**
 * Fans events out to the listening control connections. Each sink bounds its own buffer: the hub
 * only promises every sink every event, in order, while it is registered.
 */
export class EventHub {
  #sinks = new Set<EventSink>();
  #relay: EventSink | undefined;

  /** Raises an event: straight to this process's listeners, or through the relay when one is set. */
  emit(payload: string): void {
    if (this.#relay) this.#relay(payload);
    else this.fanout(payload);
  }

  /** In a cluster every event goes through the bus, which brings it back to every node's fanout. */
  relayThrough(relay: EventSink): void {
    this.#relay = relay;
  }

  /** Hands an event to this process's listeners. */
  fanout(payload: string): void {
    for (const sink of this.#sinks) sink(payload);
  }

  /**
   * The state's IDs have a new lifetime (Redis lost webtalk's data): this process's listeners hear
   * `[epoch] NEW`. Not relayed: in a cluster every node finds out by itself and tells its own.
   */
  epochChanged(epoch: string): void {
    this.fanout(`[epoch] ${epoch}`);
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
