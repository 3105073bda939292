// A backend that pipelines 60,000 frames on a --redis node and reads nothing for 3 s, then reads
// slowly: every frame is answered once, in frame order. In-order shouts are interleaved with barriers
// ([store]/[retrieve] with a value unique per frame) and synchronous replies ([ping], errors), so any
// reordering, loss or duplicate shows. Real processes: webtalk and redis-server.

import { describe, expect, test } from "bun:test";
import net from "node:net";
import { encodeFrames, FrameDecoder } from "../src/protocol/frame.ts";
import { ControlClient } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer } from "./process.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("a slow reader of pipelined replies", () => {
  test("gets every reply once, in frame order", async () => {
    const node = await spawnServer(["bun", MAIN, ...LOOPBACK, "--redis", redis.url, "--redis-prefix", uniquePrefix("slow")]);
    try {
      const ctl = await ControlClient.connect(node.privatePort);
      const channel = await ctl.ok("[newchannel]");
      ctl.close();
      const frames: string[] = [];
      const expected: string[] = [];
      for (let i = 0; frames.length < 60_000; i++) {
        const k = i % 10;
        if (k < 6) {
          frames.push(`[shout] ${channel}!${i}`);
          expected.push("[ok] message sent");
        } else if (k === 6) {
          frames.push(`[store] key!${i}`, `[retrieve] key`);
          expected.push("[ok] stored key", `[ok] ${i}`);
        } else if (k === 7) {
          frames.push("[ping]");
          expected.push("[ok] pong");
        } else if (k === 8) {
          frames.push(`[shout] x!${i}`);
          expected.push(`[error] invalid channel ID "x": expected digits`);
        } else {
          frames.push(`[whisper] 1!${i}`);
          expected.push("[error] no such user 1");
        }
      }
      const sock = net.connect(node.privatePort, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      sock.pause();
      const decoder = new FrameDecoder();
      const got: string[] = [];
      const done = Promise.withResolvers<void>();
      sock.on("data", (chunk: Buffer) => {
        for (const f of decoder.push(new Uint8Array(chunk))) if (f.kind === "payload") got.push(new TextDecoder().decode(f.bytes));
        if (got.length >= expected.length) done.resolve();
        sock.pause();
        setTimeout(() => sock.resume(), 1); // a slow reader
      });
      sock.write(encodeFrames(frames));
      await Bun.sleep(3_000);
      sock.resume();
      await Promise.race([done.promise, Bun.sleep(45_000)]);
      sock.destroy();
      const firstDiff = expected.findIndex((e, i) => got[i] !== e);
      expect({ count: got.length, firstDiff, at: firstDiff >= 0 ? [frames[firstDiff], expected[firstDiff], got[firstDiff]] : [] }).toEqual({
        count: expected.length,
        firstDiff: -1,
        at: [],
      });
    } finally {
      await node.stop("SIGKILL");
    }
  }, 60_000);
});
