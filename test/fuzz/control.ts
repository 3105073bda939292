// Hostile backends on the private port: random bytes, random and mutated frames, bad and lying headers,
// truncated frames, invalid UTF-8, absurd IDs, huge pipelined bursts, frames split anywhere, vanishing.
// Where the input is well framed, it checks the protocol's promise: exactly one reply per frame, in order.

import { encodeFrame, FrameDecoder, HEADER_LENGTH, MAX_PAYLOAD } from "../../src/protocol/frame.ts";
import type { Random } from "../random.ts";
import { RawConnection } from "../raw.ts";
import type { FuzzTarget, Tally } from "./target.ts";

const REPLY_WAIT_MS = 8_000;
const COMMANDS = [
  "newuser", "killuser", "whisper", "newchannel", "killchannel", "shout", "join", "leave", "store", "clear",
  "retrieve", "ping", "online", "count", "members", "kick", "stats", "listen", "auth", "ok", "error", "WHISPER", "",
];
/** Few keys, so the shared store stays bounded however long the fuzz runs (it has no limit of its own). */
const KEYS = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "", "k!x", "ключ", "k\n"];
const INVALID_UTF8 = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]];

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
  const bytes = concat([...payloads.map(frameBytes), ...(goodbye ? [encodeFrame("").subarray(0, HEADER_LENGTH)] : [])]);
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
  const header = r.bytes(HEADER_LENGTH).map((b) => (r.chance(0.6) ? 48 + (b % 10) : b));
  header[r.int(HEADER_LENGTH)] = r.pick([0x20, 0x2d, 0x2b, 0x61, 0x00, 0xff, 0x5b]); // ' ' '-' '+' 'a' NUL 0xff '['
  // Nothing after a bad header is read, so what follows it needs no guarding.
  const bytes = concat([...payloads.map(frameBytes), header, r.bytes(r.int(200))]);
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

/** One frame payload: a command (often mutated), random bytes, or random text. */
function payload(target: FuzzTarget, r: Random): Uint8Array {
  const kind = r.int(10);
  if (kind < 6) return mutate(utf8(command(target, r, 2000)), r);
  if (kind < 7) return r.bytes(r.between(1, 3000));
  if (kind < 8) return utf8(randomText(r, r.between(1, 500)));
  if (kind < 9) return utf8(huge(target, r));
  return utf8(`[${r.pick(COMMANDS)}]${r.pick(["", " ", "  ", "\t", "\n"])}${absurdId(target, r)}`);
}

/** A command with plausible or absurd arguments. Messages stay small: held whispers must stay bounded. */
function command(target: FuzzTarget, r: Random, maxMessage: number): string {
  const name = r.pick(COMMANDS);
  const message = () => (r.chance(0.7) ? `m${r.int(1e6)}` : randomText(r, r.int(maxMessage)));
  switch (name) {
    case "whisper": return `[whisper] ${userId(target, r)}!${message()}`;
    case "shout": return `[shout] ${channelId(target, r)}!${message()}`;
    case "join":
    case "leave": return `[${name}] ${channelId(target, r)}!${userId(target, r)}`;
    case "killuser":
    case "kick":
    case "online": return `[${name}] ${userId(target, r)}`;
    case "killchannel":
    case "count": return `[${name}] ${channelId(target, r)}`;
    case "members": return `[members] ${channelId(target, r)}${r.chance(0.5) ? `!${absurdId(target, r)}` : ""}`;
    case "store": return `[store] ${r.pick(KEYS)}!${message()}`;
    case "clear":
    case "retrieve": return `[${name}] ${r.pick(KEYS)}`;
    case "newuser":
    case "newchannel":
      // Rare, so a run creates thousands of users at most, not millions: growth here would be legitimate.
      return r.chance(0.05) ? `[${name}]` : `[${name}] ${absurdId(target, r)}`;
    default: return `[${name}]${r.chance(0.5) ? "" : ` ${absurdId(target, r)}`}`;
  }
}

/** A near-maximal payload for commands that keep nothing (or keep it under a fixed key). */
function huge(target: FuzzTarget, r: Random): string {
  const size = r.between(MAX_PAYLOAD - 100, MAX_PAYLOAD - 20);
  const fill = "x".repeat(size);
  return r.pick([
    `[ping] ${fill}`,
    `[whisper] ${r.pick(target.deadUsers)}!${fill}`,
    `[shout] ${channelId(target, r)}!${fill}`,
    `[store] big!${fill}`,
    `[store] ${fill}!v`, // stored under a huge key whose echo does not fit: one fixed key, bounded
    `[retrieve] ${fill}`,
    `[members] ${"9".repeat(size)}`,
    `[${fill}]`,
  ]);
}

function userId(target: FuzzTarget, r: Random): string {
  const k = r.int(10);
  if (k < 6) return String(r.pick(target.users));
  if (k < 8) return String(r.pick(target.deadUsers));
  return absurdId(target, r);
}

function channelId(target: FuzzTarget, r: Random): string {
  const k = r.int(10);
  if (k < 6) return String(r.pick(target.channels));
  if (k < 7) return "1";
  return absurdId(target, r);
}

function absurdId(target: FuzzTarget, r: Random): string {
  return r.pick([
    "", "0", "-1", "+5", " 5", "5 ", "5x", "1e3", "0x1f", "1.5", "٣", "５", "NaN", "Infinity",
    "99999999999999999999999999", String(2 ** 53 + 1), String(2 ** 31), String(2 ** 32 + 7),
    `0000000000${r.pick(target.users)}`, "9".repeat(r.between(20, 300)), String(r.between(1e6, 1e9)),
  ]);
}

/** Flips, inserts or deletes a few bytes, sometimes splicing in invalid UTF-8. */
function mutate(bytes: Uint8Array, r: Random): Uint8Array {
  if (r.chance(0.5)) return bytes;
  const out = [...bytes];
  for (let n = r.between(1, 4); n > 0; n--) {
    const at = r.int(out.length + 1);
    const op = r.int(4);
    if (op === 0 && out.length > 1) out[Math.min(at, out.length - 1)] = r.int(256);
    else if (op === 1 && out.length > 1) out.splice(at, 1);
    else if (op === 2) out.splice(at, 0, ...r.pick(INVALID_UTF8));
    else out.splice(at, 0, r.int(256));
  }
  return out.length === 0 ? Uint8Array.of(0x5b) : Uint8Array.from(out);
}

function randomText(r: Random, length: number): string {
  let text = "";
  for (let i = 0; i < length; i++) {
    const k = r.int(10);
    if (k < 5) text += String.fromCharCode(r.between(0x20, 0x7e));
    else if (k < 7) text += r.pick(["!", "[", "]", " ", "\n", "\r", "\0", "\t"]);
    else if (k < 9) text += String.fromCodePoint(r.between(0xa0, 0xd7ff));
    else text += String.fromCodePoint(r.between(0x10000, 0x10ffff));
  }
  return text;
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
      } else if (/^\[(online|offline)\] \d+$/.test(text) || text.startsWith("[message] ")) this.events++;
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
