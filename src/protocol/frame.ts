// The control port's framing: 5 ASCII digits giving the payload length in bytes, then the payload.
// Pure: bytes in, frames out. No sockets, timers or logs, so it can be property-tested.

export const HEADER_LENGTH = 5;
export const MAX_PAYLOAD = 99_999;

/** One decoded unit: a payload, the end-of-session frame `00000`, or an unrecoverable header error. */
export type Frame =
  | { kind: "payload"; bytes: Uint8Array }
  | { kind: "goodbye" }
  | { kind: "bad-header"; header: string };

/**
 * Incremental decoder: feed it chunks exactly as they arrive from TCP (any split, any pipelining)
 * and it yields whole frames in order. It buffers at most one incomplete frame (≤ 100,004 bytes).
 * After a bad header it yields nothing more: the stream cannot be resynchronised.
 */
export class FrameDecoder {
  #buffer = new Uint8Array(0);
  #offset = 0;
  #end = 0;
  #broken = false;

  /** Appends a chunk and returns every frame it completes. */
  push(chunk: Uint8Array): Frame[] {
    if (this.#broken) return [];
    const frames: Frame[] = [];
    // Fast path: nothing buffered, decode straight out of the chunk without copying it.
    let source = chunk;
    let pos = 0;
    let end = chunk.length;
    if (this.#end > this.#offset) {
      this.#append(chunk);
      source = this.#buffer;
      pos = this.#offset;
      end = this.#end;
    }
    while (end - pos >= HEADER_LENGTH) {
      const length = readHeader(source, pos);
      if (length < 0) {
        this.#broken = true;
        frames.push({ kind: "bad-header", header: headerText(source, pos) });
        this.#reset();
        return frames;
      }
      if (length === 0) {
        frames.push({ kind: "goodbye" });
        pos += HEADER_LENGTH;
        continue;
      }
      if (end - pos - HEADER_LENGTH < length) break;
      const start = pos + HEADER_LENGTH;
      frames.push({ kind: "payload", bytes: source.subarray(start, start + length) });
      pos = start + length;
    }
    this.#keep(source, pos, end);
    return frames;
  }

  /** Bytes held for a frame that has not fully arrived. */
  get pending(): number {
    return this.#end - this.#offset;
  }

  // Appends after the bytes in use and never writes over them: frames handed out are views into the buffer.
  #append(chunk: Uint8Array): void {
    const used = this.#end - this.#offset;
    if (this.#buffer.length - this.#end < chunk.length) {
      const grown = new Uint8Array(Math.max(2 * (used + chunk.length), 256));
      grown.set(this.#buffer.subarray(this.#offset, this.#end), 0);
      this.#buffer = grown;
      this.#offset = 0;
      this.#end = used;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  #keep(source: Uint8Array, pos: number, end: number): void {
    if (pos >= end) return this.#reset();
    if (source === this.#buffer) {
      this.#offset = pos;
      return;
    }
    // The rest of a caller's chunk is copied: the caller may reuse its buffer after push returns.
    const rest = source.subarray(pos, end);
    this.#buffer = new Uint8Array(Math.max(rest.length, HEADER_LENGTH + readable(rest), 256));
    this.#buffer.set(rest, 0);
    this.#offset = 0;
    this.#end = rest.length;
  }

  #reset(): void {
    this.#buffer = new Uint8Array(0);
    this.#offset = 0;
    this.#end = 0;
  }
}

/** Encodes one payload as a frame. Throws when it does not fit: callers check `fitsInFrame` first. */
export function encodeFrame(payload: string): Uint8Array {
  return encodeFrames([payload]);
}

/**
 * Encodes many payloads into one buffer, so one socket write carries them all. Each payload is
 * written straight into place (ASCII by a copy loop, the rest by `encodeInto`): no per-payload
 * buffers and no views, which made up most of the cost of a reply on the pipelined control path.
 * The worst case (3 bytes per UTF-16 unit) is reserved in a reused scratch buffer and the result is
 * copied out at its exact size: what a caller keeps (a write queue) holds no unused reservation.
 */
export function encodeFrames(payloads: readonly string[]): Uint8Array {
  let capacity = 0;
  for (let i = 0; i < payloads.length; i++) capacity += HEADER_LENGTH + MAX_UTF8_PER_UNIT * payloads[i]!.length;
  const out = scratchOf(capacity);
  let pos = 0;
  for (let i = 0; i < payloads.length; i++) pos = writeFrame(out, pos, payloads[i]!);
  return out.slice(0, pos);
}

// One scratch buffer for every encoding; a larger need gets a buffer of its own, dropped afterwards.
const SCRATCH_MAX = 4 << 20;
let scratch = new Uint8Array(64 * 1024);
function scratchOf(capacity: number): Uint8Array {
  if (capacity <= scratch.length) return scratch;
  if (capacity > SCRATCH_MAX) return new Uint8Array(capacity);
  scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(capacity, 2 * scratch.length)));
  return scratch;
}

/** The UTF-8 length of a string, without allocating. */
export function byteLength(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

export function fitsInFrame(payload: string): boolean {
  // Every UTF-16 unit is at most 3 UTF-8 bytes: short strings need no measuring.
  return payload.length * 3 <= MAX_PAYLOAD || byteLength(payload) <= MAX_PAYLOAD;
}

const utf8 = new TextEncoder();
const DIGIT_0 = 48;
/** A UTF-16 unit never takes more than 3 bytes of UTF-8 (a surrogate pair: 4 bytes for 2 units). */
const MAX_UTF8_PER_UNIT = 3;
/** Past this many units the native encoder beats a copy loop even for ASCII. */
const ASCII_LOOP_MAX = 256;

// Writes header and payload at `pos` (room for the worst case is there) and returns the end.
function writeFrame(out: Uint8Array, pos: number, payload: string): number {
  const start = pos + HEADER_LENGTH;
  let length = payload.length <= ASCII_LOOP_MAX ? copyAscii(payload, out, start) : -1;
  if (length < 0) length = utf8.encodeInto(payload, out.subarray(start)).written;
  if (length > MAX_PAYLOAD) throw new RangeError(`payload of ${length} bytes exceeds ${MAX_PAYLOAD}`);
  writeHeader(out, pos, length);
  return start + length;
}

// Copies an all-ASCII string byte for byte; -1 at the first other unit (the caller re-encodes it all).
function copyAscii(text: string, out: Uint8Array, at: number): number {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x80) return -1;
    out[at + i] = unit;
  }
  return text.length;
}

function readHeader(bytes: Uint8Array, pos: number): number {
  let value = 0;
  for (let i = pos; i < pos + HEADER_LENGTH; i++) {
    const digit = bytes[i]! - DIGIT_0;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function writeHeader(target: Uint8Array, pos: number, length: number): void {
  for (let i = HEADER_LENGTH - 1; i >= 0; i--) {
    target[pos + i] = DIGIT_0 + (length % 10);
    length = Math.floor(length / 10);
  }
}

function headerText(bytes: Uint8Array, pos: number): string {
  return Array.from(bytes.subarray(pos, pos + HEADER_LENGTH), (b) =>
    b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`,
  ).join("");
}

// How much of a frame whose start is in `rest` is still to come, so the buffer is sized once.
function readable(rest: Uint8Array): number {
  if (rest.length < HEADER_LENGTH) return 0;
  return Math.max(readHeader(rest, 0), 0);
}
