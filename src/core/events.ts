/** The event that names the state's epoch: the first a `[listen]`ing connection hears, and on each change. */
export function epochEvent(epoch: string): string {
  return `[epoch] ${epoch}`;
}

/** Receives each event payload, in the order events happened. */
export type EventSink = (payload: string) => void;

/**
 * Fans events out to the listening control connections. Each sink bounds its own buffer: the hub
 * only promises every sink every event, in order, while it is registered.
 */
export class EventHub {
  #sinks = new Set<EventSink>();
  #relay: EventSink | undefined;
  #onListening: ((listening: boolean) => Promise<void>) | undefined;
  /** Whether this process hears the cluster's events (always, without a cluster). */
  #hearing = false;
  #ready: Promise<void> = Promise.resolve();
  /** The epoch last announced by epochChanged. */
  #epoch: string | undefined;

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
   * The state's epoch changed (its IDs' lifetime ended: a Redis that lost webtalk's data): tells this
   * process's listeners `[epoch] EPOCH`, once per new epoch. Never relayed: in a cluster every node
   * finds out on its own and tells its own listeners, so each hears it once.
   */
  epochChanged(epoch: string): void {
    if (epoch === this.#epoch) return;
    this.#epoch = epoch;
    this.fanout(epochEvent(epoch));
  }

  /** Registers a sink; returns the function that removes it. */
  add(sink: EventSink): () => void {
    this.#sinks.add(sink);
    this.#hear();
    return () => {
      if (this.#sinks.delete(sink) && this.#sinks.size === 0 && this.#hearing && this.#onListening) {
        this.#hearing = false;
        this.#ready = this.#onListening(false);
      }
    };
  }

  /**
   * A cluster's node hears events only while it has listeners: `listener` starts (true) or stops
   * (false) hearing them and answers once that took effect.
   */
  whenListening(listener: (listening: boolean) => Promise<void>): void {
    this.#onListening = listener;
  }

  /**
   * Answers once this process hears every event raised from now on (a cluster's node subscribes
   * first): `[listen]` replies after it, so no event after the reply is missed. A `[listen]` whose
   * connection closes before its sink is added leaves the node hearing events until a later last
   * listener leaves.
   */
  ready(): Promise<void> | undefined {
    if (!this.#onListening) return undefined;
    this.#hear();
    return this.#ready;
  }

  #hear(): void {
    if (this.#hearing || !this.#onListening) return;
    this.#hearing = true;
    this.#ready = this.#onListening(true);
  }

  get listeners(): number {
    return this.#sinks.size;
  }
}
