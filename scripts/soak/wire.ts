// A pipelined control connection for a soak backend: commands leave in batches, each reply goes to its
// command's callback in order, and events (frames that are neither `[ok]` nor `[error]`) to `onEvent`,
// interleaved exactly as the server wrote them.

import { encodeFrames, FrameDecoder } from "../../src/protocol/frame.ts";
import { within } from "../../test/helpers.ts";
import { RawConnection } from "../../test/raw.ts";

interface Pending {
  payload: string;
  onReply: (reply: string) => void;
}

export class Wire {
  #conn!: RawConnection;
  #decoder = new FrameDecoder();
  #text = new TextDecoder();
  #pending: Pending[] = [];
  #outbox: string[] = [];
  #tick = Promise.withResolvers<void>();

  private constructor(
    private readonly name: string,
    private readonly onEvent: (text: string) => void,
    private readonly onStray: (text: string) => void,
  ) {}

  /** Connects to the control port; `onStray` hears of a reply that answers no command. */
  static async open(port: number, name: string, onEvent: (text: string) => void, onStray: (text: string) => void): Promise<Wire> {
    const wire = new Wire(name, onEvent, onStray);
    wire.#conn = await RawConnection.open(port, (chunk) => wire.#received(chunk));
    return wire;
  }

  /** Commands sent and not yet answered. */
  get pending(): number {
    return this.#pending.length;
  }

  send(payload: string, onReply: (reply: string) => void): void {
    this.#pending.push({ payload, onReply });
    this.#outbox.push(payload);
    // Commands issued in one turn of the event loop leave in one write.
    if (this.#outbox.length === 1) queueMicrotask(() => this.#flush());
  }

  /** Resolves at the next batch of frames, or the next `wake()`. */
  changed(ms: number): Promise<void> {
    return within(this.#tick.promise, `${this.name}: replies`, ms);
  }

  /** Tells waiters something changed outside the connection (a browser's report). */
  wake(): void {
    const tick = this.#tick;
    this.#tick = Promise.withResolvers<void>();
    tick.resolve();
  }

  /** Waits, on frames and wakes rather than on a clock, until `condition` holds; fails after `ms`. */
  async until(condition: () => boolean, what: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (this.#conn.isClosed) throw new Error(`${this.name}: the control connection closed while waiting for ${what}`);
      await within(this.#tick.promise, `${this.name}: ${what}`, Math.max(1, deadline - Date.now()));
    }
  }

  close(): void {
    this.#conn.end();
  }

  #flush(): void {
    const batch = this.#outbox;
    this.#outbox = [];
    this.#conn.write(encodeFrames(batch));
  }

  #received(chunk: Uint8Array): void {
    for (const frame of this.#decoder.push(chunk)) {
      const text = frame.kind === "payload" ? this.#text.decode(frame.bytes) : `<${frame.kind}>`;
      if (text.startsWith("[ok]") || text.startsWith("[error]")) {
        const command = this.#pending.shift();
        if (command) command.onReply(text);
        else this.onStray(text);
      } else this.onEvent(text);
    }
    this.wake();
  }
}
