// The unsolicited frames a `[listen]`ing control connection receives, as typed values.

export type WebtalkEvent =
  /** A user's browser logged in (`[online] ID`). */
  | { type: "online"; user: number }
  /** A user's last browser went away (`[offline] ID`). */
  | { type: "offline"; user: number }
  /** A logged-in browser sent text, with `--upstream` (`[message] ID!TEXT`). */
  | { type: "message"; user: number; text: string }
  /** A resuming webtalk.v2 browser could not get back what SOURCE ("u" or a channel ID) sent while it was away (`[gap] ID!SOURCE`). */
  | { type: "gap"; user: number; source: string }
  /**
   * The lifetime of the server's IDs (`[epoch] EPOCH`): the first event after listening (again, after
   * a reconnection), and whenever it changes. A value other than the one the backend saw before means
   * the users and channels it created are gone: create them again.
   */
  | { type: "epoch"; epoch: string }
  /** The client reconnected and listens again: events in between were missed, so resynchronise. */
  | { type: "reconnected" }
  /** A frame this client does not know yet, kept whole. */
  | { type: "other"; payload: string };

/** Parses one event frame's payload; anything unexpected becomes `other` rather than an exception. */
export function parseEvent(payload: string): WebtalkEvent {
  if (payload.startsWith("[epoch] ")) return { type: "epoch", epoch: payload.slice("[epoch] ".length) };
  const match = /^\[(online|offline|message|gap)\] (\d+)(?:!([\s\S]*))?$/.exec(payload);
  if (!match) return { type: "other", payload };
  const [, name, id, text] = match;
  const user = Number(id);
  if (name === "message" && text !== undefined) return { type: "message", user, text };
  if (name === "gap" && text !== undefined) return { type: "gap", user, source: text };
  if (name === "online" && text === undefined) return { type: "online", user };
  if (name === "offline" && text === undefined) return { type: "offline", user };
  return { type: "other", payload };
}

/** Where a connection hands events to one iterator. */
export interface EventStream {
  push(event: WebtalkEvent): void;
  end(): void;
}

/**
 * An async iterator fed through `stream`: its first `next()` waits for `ready` (and throws what it
 * throws), it buffers what has not been read, and it ends on `stream.end()` or `return()`, calling `detach`.
 */
export function eventIterator(ready: Promise<void>, detach: () => void): { iterator: AsyncIterableIterator<WebtalkEvent>; stream: EventStream } {
  // Marked handled now: a failure surfaces at the first next(), not as an unhandled rejection before it.
  ready.catch(() => undefined);
  const queue: WebtalkEvent[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let confirmed = false;
  const stream: EventStream = {
    push(event) {
      queue.push(event);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
  };
  const finish = (): IteratorReturnResult<undefined> => {
    detach();
    stream.end();
    return { done: true, value: undefined };
  };
  const iterator: AsyncIterableIterator<WebtalkEvent> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (!confirmed) {
        confirmed = true;
        await ready.catch((error: unknown) => {
          finish();
          throw error;
        });
      }
      while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
      const event = queue.shift();
      return event ? { done: false, value: event } : finish();
    },
    return: async () => finish(),
  };
  return { iterator, stream };
}
