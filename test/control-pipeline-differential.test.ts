// Replies in frame order with --redis (issue 15's pipelined commands): one random mix of in-order
// commands ([whisper], [shout], [join], [leave]), barriers ([online], [count], [members], [store],
// [retrieve], [kick], [newchannel]), synchronous errors and one [listen], sent as one write to a plain
// server and to a --redis node (real processes), must be answered with the same replies in the same
// order (IDs mapped). Events ([listen]) are set aside: on --redis they may come a few frames late.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, newUser } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer, type Spawned } from "./process.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

function script(seed: number, count: number): string[] {
  let s = seed;
  const rand = (n: number) => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const U = () => `U${rand(3)}`;
  const C = () => `C${rand(2)}`;
  const out: string[] = [];
  let listened = false;
  for (let i = 0; i < count; i++) {
    const k = rand(100);
    if (k < 25) out.push(`[shout] ${C()}!s${i}`);
    else if (k < 45) out.push(`[whisper] ${U()}!w${i}`);
    else if (k < 55) out.push(`[join] ${C()}!${U()}`);
    else if (k < 62) out.push(`[leave] ${C()}!${U()}`);
    else if (k < 66) out.push(`[online] ${U()}`);
    else if (k < 70) out.push(`[count] ${C()}`);
    else if (k < 73) out.push(`[members] ${C()}`);
    else if (k < 76) out.push(`[store] k${rand(3)}!v${i}`);
    else if (k < 79) out.push(`[retrieve] k${rand(3)}`);
    else if (k < 82) out.push(`[shout] 999!nochannel`);
    else if (k < 85) out.push(`[whisper] 999!nouser`);
    else if (k < 88) out.push(`[bogus] ${i}`);
    else if (k < 90) out.push(`[join] x!y`);
    else if (k < 92) out.push(`[ping]`);
    else if (k < 94 && !listened) {
      listened = true;
      out.push(`[listen]`);
    } else out.push(`[shout] ${C()}!t${i}`);
  }
  return out;
}

async function run(node: Spawned, frames: string[]): Promise<string[]> {
  const ctl = await ControlClient.connect(node.privatePort);
  try {
    const ids: Record<string, string> = {};
    for (let i = 0; i < 3; i++) ids[`U${i}`] = String((await newUser(ctl)).id);
    for (let i = 0; i < 2; i++) ids[`C${i}`] = await ctl.ok("[newchannel]");
    // Replies name users only ([members]); plain IDs of users and channels may coincide.
    const back = Object.fromEntries(Object.entries(ids).filter(([k]) => k.startsWith("U")).map(([k, v]) => [v, k]));
    const real = frames.map((f) => f.replace(/\b([UC]\d)\b/g, (m) => ids[m]!));
    ctl.write(encodeFrames(real));
    const replies: string[] = [];
    // Replies only: events are neither [ok] nor [error].
    while (replies.length < frames.length) {
      const next = await ctl.replies.next("a reply", 20_000);
      if (next.startsWith("[ok]") || next.startsWith("[error]")) replies.push(next);
    }
    return replies.map((r) => r.replace(/\d{6,}/g, (m) => back[m] ?? "ID"));
  } finally {
    ctl.close();
  }
}

describe.skipIf(!haveRedis)("pipelined replies", () => {
  test("a random mix answers the same, in the same order, plain and --redis", async () => {
    const plain = await spawnServer(["bun", MAIN, ...LOOPBACK]);
    const clustered = await spawnServer(["bun", MAIN, ...LOOPBACK, "--redis", redis.url, "--redis-prefix", uniquePrefix("diff"), "--lease", "2"]);
    try {
      for (const seed of [1, 2, 3]) {
        const frames = script(seed, 1_500);
        const [a, b] = [await run(plain, frames), await run(clustered, frames)];
        const diffs = a.map((r, i) => [i, frames[i], r, b[i]] as const).filter(([, , x, y]) => x !== y);
        expect({ seed, first: diffs.slice(0, 5), count: diffs.length }).toEqual({ seed, first: [], count: 0 });
      }
    } finally {
      await plain.stop("SIGKILL");
      await clustered.stop("SIGKILL");
    }
  }, 60_000);
});
