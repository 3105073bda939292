// Which asynchronous replies a control connection may pipeline past.

const IN_ORDER: unique symbol = Symbol("in order");

/**
 * A reply still to come whose command has already issued all of its work, in call order, on the one
 * Redis command link (a single script or command, written before the handler returned). Redis runs one
 * connection's commands in the order they were sent, so the next frame's command may run at once: its
 * effects and deliveries still come after this one's. Any other pending reply is a barrier: nothing
 * after it runs until it is answered. Mark only a handler whose one call is issued synchronously.
 */
export type InOrder<T> = Promise<T> & { readonly [IN_ORDER]: true };

/** Marks `reply` as issued in order (see InOrder); no copy is made. */
export function inOrder<T>(reply: Promise<T>): InOrder<T> {
  (reply as { [IN_ORDER]?: true })[IN_ORDER] = true;
  return reply as InOrder<T>;
}

/** Whether `reply` was marked by `inOrder`. */
export function isInOrder(reply: Promise<unknown>): boolean {
  return (reply as { [IN_ORDER]?: true })[IN_ORDER] === true;
}
