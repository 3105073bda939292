import type { Socket } from "bun";

/**
 * Bytes a TCP socket has not taken yet. Bun's sockets neither buffer nor frame: a write may be
 * partial, so the rest waits here, in order, until `drain`.
 */
export class WriteQueue {
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  /** Unsent bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  get empty(): boolean {
    return this.#chunks.length === 0;
  }

  /** Writes now what the kernel takes, queues the rest behind anything already queued. */
  write(socket: Socket<unknown>, bytes: Uint8Array): void {
    if (this.#chunks.length === 0) {
      const written = Math.max(socket.write(bytes), 0);
      if (written === bytes.length) return;
      bytes = bytes.subarray(written);
    }
    this.#chunks.push(bytes);
    this.#bytes += bytes.length;
  }

  /** Writes queued bytes until the kernel stops taking them; true when nothing is left. */
  flush(socket: Socket<unknown>): boolean {
    while (this.#chunks.length > 0) {
      const head = this.#chunks[0]!;
      const written = Math.max(socket.write(head), 0);
      this.#bytes -= written;
      if (written < head.length) {
        this.#chunks[0] = head.subarray(written);
        return false;
      }
      this.#chunks.shift();
    }
    return true;
  }
}
