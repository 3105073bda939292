// Replies a Redis-backed server gets back together go out to the backend together: a pipelined burst of
// cluster commands is answered in a few writes, not one per reply. Each write is a system call, and one
// per reply was a fifth of a sending node's CPU in a pipelined burst; the kernel's Nagle coalescing
// hides it on the wire, so the writes are counted where they happen: strace attached to a real server
// process counts its sendto calls on the control connection.

import type { Subprocess } from "bun";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, within } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer, type Spawned } from "./process.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();
// strace needs ptrace, which some containers forbid: tried once on `true` before the test.
const haveStrace = Bun.which("strace") !== null && Bun.spawnSync(["strace", "-o", "/dev/null", "true"]).exitCode === 0;
if (!haveStrace) console.warn("SKIPPING the reply-write count: strace is not installed or may not trace here (apt-get install strace)");
const dir = mkdtempSync(join(tmpdir(), "webtalk-reply-writes-"));
const servers: Spawned[] = [];
const clients: ControlClient[] = [];
const tracers: Subprocess[] = [];
afterAll(async () => {
  for (const tracer of tracers) tracer.kill("SIGKILL");
  for (const ctl of clients) ctl.close();
  for (const server of servers) await server.stop("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Attaches strace to `pid`, recording its sendto calls in `file`; resolves once it is attached. */
async function traceSends(pid: number, file: string): Promise<Subprocess> {
  const tracer = Bun.spawn(["strace", "-f", "-e", "trace=sendto", "-o", file, "-p", String(pid)], { stdout: "ignore", stderr: "pipe" });
  tracers.push(tracer);
  const attached = (async () => {
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of tracer.stderr) {
      text += decoder.decode(chunk, { stream: true });
      if (/attached/.test(text)) return;
    }
    throw new Error(`strace could not attach: ${text}`);
  })();
  await within(attached, "strace to attach", 10_000);
  return tracer;
}

describe.skipIf(!haveRedis || !haveStrace)("replies of a pipelined burst on Redis", () => {
  test("2,000 pipelined shouts are answered in far fewer than 2,000 writes", async () => {
    const server = await spawnServer([process.execPath, MAIN, ...LOOPBACK, "--redis", redis.url, "--redis-prefix", uniquePrefix("writes")]);
    servers.push(server);
    const ctl = await ControlClient.connect(server.privatePort);
    clients.push(ctl);
    const channel = await ctl.ok("[newchannel]");
    const COUNT = 2_000;
    const file = join(dir, "sends.txt");
    const tracer = await traceSends(server.proc.pid, file);
    ctl.write(encodeFrames(Array.from({ length: COUNT }, (_, i) => `[shout] ${channel}!m${i}`)));
    const replies: string[] = [];
    for (let i = 0; i < COUNT; i++) replies.push(await ctl.replies.next(`reply ${i + 1} of ${COUNT}`));
    tracer.kill("SIGINT");
    await within(tracer.exited, "strace to detach", 10_000);
    expect(replies.filter((reply) => reply !== "[ok] message sent")).toEqual([]);
    // Each sendto of replies starts with the first one's frame (strace shows the head of the buffer).
    const writes = readFileSync(file, "utf8").split("\n").filter((line) => line.includes('"00017[ok] message sent')).length;
    console.log(`${COUNT} replies in ${writes} writes`);
    expect(writes).toBeGreaterThan(0);
    // One per reply before (2,000); about one per read of the Redis link now.
    expect(writes).toBeLessThan(COUNT / 10);
  });
});
