import type { Socket } from "bun";

// What one queued buffer costs beyond its bytes: the typed array, its ArrayBuffer and the slot in the
// queue. Counted so that many tiny queued writes weigh what they really hold.
const CHUNK_OVERHEAD = 128;
/** Writes smaller than this are copied into a shared tail buffer while the queue is not empty. */
const SMALL_WRITE = 4096;
const TAIL_SIZE = 64 * 1024;

/**
 * Bytes a TCP socket has not taken yet. Bun's sockets neither buffer nor frame: a write may be
 * partial, so the rest waits here, in order, until `drain`. Small writes queued behind others are
 * gathered into larger buffers, so a slow reader of many small frames holds about their bytes.
 */
export class WriteQueue {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #held = 0;
  /** The last chunk when it is a gathering buffer: small writes are appended to it up to `#tailEnd`. */
  #tail: Uint8Array | undefined;
  #tailEnd = 0;

  /** Unsent bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Memory the queue holds: buffers whole (not just their unsent part) plus a fixed cost each. */
  get held(): number {
    return this.#held;
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
    this.#bytes += bytes.length;
    if (bytes.length < SMALL_WRITE) return this.#gather(bytes);
    this.#tail = undefined;
    this.#push(bytes);
  }

  /** Writes queued bytes until the kernel stops taking them; true when nothing is left. */
  flush(socket: Socket<unknown>): boolean {
    while (this.#chunks.length > 0) {
      const head = this.#chunks[0]!;
      const written = Math.max(socket.write(head), 0);
      this.#bytes -= written;
      if (written < head.length) {
        this.#chunks[0] = head.subarray(written);
        if (this.#chunks.length === 1 && this.#tail) this.#tail = undefined;
        return false;
      }
      this.#chunks.shift();
      this.#held -= head.buffer.byteLength + CHUNK_OVERHEAD;
      if (this.#chunks.length === 0) this.#tail = undefined;
    }
    return true;
  }

  // Appends a small write to the tail buffer, opening a new one when it is full (or there is none).
  #gather(bytes: Uint8Array): void {
    if (!this.#tail || this.#tail.length - this.#tailEnd < bytes.length) {
      const buffer = new Uint8Array(TAIL_SIZE);
      buffer.set(bytes, 0);
      this.#tail = buffer;
      this.#tailEnd = bytes.length;
      this.#push(buffer.subarray(0, bytes.length));
      return;
    }
    this.#tail.set(bytes, this.#tailEnd);
    this.#tailEnd += bytes.length;
    this.#chunks[this.#chunks.length - 1] = this.#tail.subarray(0, this.#tailEnd);
  }

  #push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#held += chunk.buffer.byteLength + CHUNK_OVERHEAD;
  }
}
