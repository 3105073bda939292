// Hostile backends on the private port: random bytes, random and mutated frames, bad and lying headers,
// truncated frames, invalid UTF-8, absurd IDs, huge pipelined bursts, frames split anywhere, vanishing.
// Where the input is well framed, it checks the protocol's promise: exactly one reply per frame, in order.

import { encodeFrame, FrameDecoder, HEADER_LENGTH, MAX_PAYLOAD } from "../../src/protocol/frame.ts";
import type { Random } from "../random.ts";
import { RawConnection } from "../raw.ts";
import { command, payload } from "./inputs.ts";
import type { FuzzTarget, Tally } from "./target.ts";

const REPLY_WAIT_MS = 8_000;
type Scenario = (target: FuzzTarget, r: Random, tally: Tally) => Promise<void>;

/** Runs one randomly chosen hostile connection against the private port, start to finish. */
export async function fuzzControlOnce(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const [name, scenario] = r.pick(SCENARIOS);
  tally.count(`control ${name}`);
  await scenario(target, r, tally);
}

const SCENARIOS: [string, Scenario][] = [
  ["framed split", framedSplit],
  ["pipelined burst", burst],
  ["bad header", badHeader],
  ["truncated frame", truncated],
  ["random bytes", randomBytes],
  ["vanish", vanish],
];

/** Well-framed random payloads, split at random points: one reply each, then goodbye closes. */
async function framedSplit(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const payloads = safe(target, r.between(1, 60), () => payload(target, r));
  const goodbye = r.chance(0.5);
  const bytes = concat([...payloads.map(frameBytes), ...(goodbye ? [encodeFrame("")] : [])]);
  const replies = new Replies();
  const conn = await open(target, tally, replies);
  if (!conn) return;
  const cuts = Array.from({ length: r.between(0, 12) }, () => r.int(bytes.length));
  await conn.writeSplit(bytes, cuts);
  await expectReplies(conn, replies, payloads.length + (goodbye ? 1 : 0), `${payloads.length} split frames`, tally);
  if (goodbye && replies.last !== "[ok] goodbye") tally.violation(`after 00000 expected [ok] goodbye, got ${replies.last}`);
  if (goodbye && !(await conn.until(() => conn.isClosed, REPLY_WAIT_MS))) tally.violation("the server kept the connection open after 00000");
  conn.terminate();
}

/** Thousands of commands in one write; read every reply, or vanish without reading. */
async function burst(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const payloads = safe(target, r.between(500, 20_000), () => (r.chance(0.9) ? utf8(command(target, r, 200)) : payload(target, r)));
  const count = payloads.length;
  const bytes = concat(payloads.map(frameBytes));
  const replies = new Replies();
  const conn = await open(target, tally, replies);
  if (!conn) return;
  conn.write(bytes);
  if (r.chance(0.3)) return conn.terminate();
  await expectReplies(conn, replies, count, `a burst of ${count} frames`, tally);
  conn.end();
}

/** Good frames, then a header that is not 5 digits: their replies, a bad-header error, then the server closes. */
async function badHeader(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const payloads = safe(target, r.between(0, 10), () => payload(target, r));
  const bad = r.bytes(HEADER_LENGTH).map((b) => (r.chance(0.6) ? 48 + (b % 10) : b));
  bad[r.int(HEADER_LENGTH)] = r.pick([0x20, 0x2d, 0x2b, 0x61, 0x00, 0xff, 0x5b]); // ' ' '-' '+' 'a' NUL 0xff '['
  // Nothing after a bad header is read, so what follows it needs no guarding.
  const bytes = concat([...payloads.map(frameBytes), bad, r.bytes(r.int(200))]);
  const replies = new Replies();
  const conn = await open(target, tally, replies);
  if (!conn) return;
  await conn.writeSplit(bytes, [r.int(bytes.length)]);
  await expectReplies(conn, replies, payloads.length + 1, "frames before a bad header", tally);
  if (!replies.last.startsWith("[error] bad frame header")) tally.violation(`bad header answered ${JSON.stringify(replies.last)}`);
  if (!(await conn.until(() => conn.isClosed, REPLY_WAIT_MS))) tally.violation("the server kept the connection open after a bad header");
  conn.terminate();
}

/** Good frames, then a frame cut short (a huge announced length, or a few bytes missing), then FIN or vanish. */
async function truncated(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const payloads = safe(target, r.between(0, 10), () => payload(target, r));
  const last = r.chance(0.5) ? frameBytes(payload(target, r)) : header(r.pick([MAX_PAYLOAD, r.between(1, MAX_PAYLOAD)]));
  const cut = last.subarray(0, r.between(1, Math.max(1, last.length - 1)));
  // The cut frame never completes, so it is never run and needs no guarding.
  const bytes = concat([...payloads.map(frameBytes), cut]);
  const replies = new Replies();
  const conn = await open(target, tally, replies);
  if (!conn) return;
  conn.write(bytes);
  if (r.chance(0.3)) return conn.terminate();
  await expectReplies(conn, replies, payloads.length, "frames before a truncated one", tally);
  conn.end();
  if (!(await conn.until(() => conn.isClosed, REPLY_WAIT_MS))) tally.violation("the server kept a half-closed connection open");
  conn.terminate();
}

/** Bytes with no regard for framing: pure noise, or digit headers that lie about what follows. */
async function randomBytes(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const parts: Uint8Array[] = [];
  const lying = r.chance(0.6);
  for (let i = r.between(1, 20); i > 0; i--) {
    if (lying) parts.push(header(r.int(2000)), payload(target, r));
    else parts.push(r.bytes(r.between(1, 4096)));
  }
  // Framing here lies, so any stretch of these bytes may become a payload: guard them all at once.
  const bytes = concat(parts);
  if (!target.guard(bytes)) return;
  const conn = await open(target, tally);
  if (!conn) return;
  await conn.writeSplit(bytes, Array.from({ length: r.int(6) }, () => r.int(bytes.length)));
  if (r.chance(0.5)) conn.end();
  await conn.until(() => conn.isClosed, 200);
  conn.terminate();
}

/** Connects and goes away: at once, after half a header, or after a listen. */
async function vanish(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const conn = await open(target, tally);
  if (!conn) return;
  const what = r.int(3);
  if (what === 1) conn.write("000");
  if (what === 2) conn.write(encodeFrame("[listen]"));
  if (r.chance(0.5)) conn.terminate();
  else conn.end();
}

// ---- inputs ----

/** `count` payloads made by `make`, leaving out any the guard refuses (the frame boundaries are exact). */
function safe(target: FuzzTarget, count: number, make: () => Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = make();
    if (target.guard(bytes)) out.push(bytes);
  }
  return out;
}

// ---- framing and replies ----

/** Replies and events read back from one connection, decoded with the server's own codec. */
class Replies {
  count = 0;
  events = 0;
  last = "";
  strange: string[] = [];
  #decoder = new FrameDecoder();
  #text = new TextDecoder();

  push = (chunk: Uint8Array): void => {
    for (const frame of this.#decoder.push(chunk)) {
      if (frame.kind !== "payload") {
        this.strange.push(`<${frame.kind}>`);
        continue;
      }
      const text = this.#text.decode(frame.bytes);
      if (text.startsWith("[ok] ") || text.startsWith("[error] ")) {
        this.count++;
        this.last = text;
      } else if (/^\[(online|offline)\] \d+$/.test(text) || /^\[epoch\] [\w-]+$/.test(text) || text.startsWith("[message] ")) this.events++;
      else this.strange.push(text.slice(0, 80));
    }
  };
}

async function expectReplies(conn: RawConnection, replies: Replies, expected: number, what: string, tally: Tally) {
  await conn.until(() => replies.count >= expected, REPLY_WAIT_MS);
  tally.replies += replies.count;
  if (replies.count !== expected) tally.violation(`${what}: ${replies.count} replies instead of ${expected}`);
  if (replies.strange.length > 0) tally.violation(`${what}: frames that are neither replies nor events: ${replies.strange.slice(0, 3).join(" | ")}`);
}

async function open(target: FuzzTarget, tally: Tally, replies?: Replies): Promise<RawConnection | undefined> {
  try {
    const conn = await RawConnection.open(target.privatePort, replies?.push);
    tally.connections++;
    return conn;
  } catch (error) {
    tally.count(`control connect failed: ${(error as Error).message}`);
    return undefined;
  }
}

function frameBytes(bytes: Uint8Array): Uint8Array {
  const fitted = bytes.subarray(0, MAX_PAYLOAD);
  return concat([header(fitted.length), fitted]);
}

function header(length: number): Uint8Array {
  return utf8(String(length).padStart(HEADER_LENGTH, "0"));
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}
