// What hostile backends send: commands with plausible or absurd arguments, often mutated (bytes flipped,
// dropped or inserted, invalid UTF-8 spliced in), random bytes and text, and near-maximal payloads.

import { MAX_PAYLOAD } from "../../src/protocol/frame.ts";
import type { Random } from "../random.ts";
import type { FuzzTarget } from "./target.ts";

const COMMANDS = [
  "newuser", "killuser", "whisper", "newchannel", "killchannel", "shout", "join", "leave", "store", "clear",
  "retrieve", "ping", "online", "count", "members", "kick", "stats", "listen", "auth", "ok", "error", "WHISPER", "",
];
/** Few keys, so the shared store stays bounded however long the fuzz runs (it has no limit of its own). */
const KEYS = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "", "k!x", "ключ", "k\n"];
const INVALID_UTF8 = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]];

/** One frame payload: a command (often mutated), random bytes, or random text. */
export function payload(target: FuzzTarget, r: Random): Uint8Array {
  const kind = r.int(10);
  if (kind < 6) return mutate(utf8(command(target, r, 2000)), r);
  if (kind < 7) return r.bytes(r.between(1, 3000));
  if (kind < 8) return utf8(randomText(r, r.between(1, 500)));
  if (kind < 9) return utf8(huge(target, r));
  return utf8(`[${r.pick(COMMANDS)}]${r.pick(["", " ", "  ", "\t", "\n"])}${absurdId(target, r)}`);
}

/** A command with plausible or absurd arguments. Messages stay small: held whispers must stay bounded. */
export function command(target: FuzzTarget, r: Random, maxMessage: number): string {
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

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
