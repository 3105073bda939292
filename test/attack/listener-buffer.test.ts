// Issue 13, item 4: --listener-buffer must bound memory, not event bytes. Four [listen] connections
// that never read, while a browser floods 1-byte messages with --upstream: every listener is cut off
// at its buffer bound, and what they held costs about that bound in real memory, not 20 times it.

import { afterEach, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { encodeFrame } from "../../src/protocol/frame.ts";
import { loggedIn } from "../helpers.ts";
import { ControlClient, MB, report, RssSampler, scale, spawnTarget, within, type Spawned } from "./kit.ts";

let target: Spawned | undefined;
const stalled: Socket[] = [];
afterEach(async () => {
  for (const socket of stalled.splice(0)) socket.destroy();
  await target?.stop("SIGKILL");
  target = undefined;
});

const LISTENERS = 4;
const BUFFER = scale(1, 8) * MB;
const MESSAGES = scale(150_000, 600_000);
const GROWTH_BOUND = scale(40, 150) * MB;

/** A backend that sends [listen] and then never reads again. */
async function stalledListener(port: number): Promise<Socket> {
  const socket = connect({ host: "127.0.0.1", port });
  await within(new Promise((resolve) => socket.once("connect", resolve)), "a listener's connection");
  const answered = new Promise((resolve) => socket.once("data", resolve));
  socket.write(encodeFrame("[listen]"));
  await within(answered, "[listen]'s answer");
  socket.pause();
  return socket;
}

test("four stalled listeners under a flood of 1-byte upstream messages cost about their buffer bound", async () => {
  target = await spawnTarget(["--upstream", "--max-message-rate", "0", "--listener-buffer", String(BUFFER)]);
  const ctl = await ControlClient.connect(target.privatePort);
  const [browser] = await loggedIn(target, ctl);
  for (let i = 0; i < LISTENERS; i++) stalled.push(await stalledListener(target.privatePort));
  const rss = new RssSampler(target.proc.pid);
  for (let sent = 0; sent < MESSAGES; sent += 1_000) {
    for (let i = 0; i < 1_000; i++) browser.send("x");
    while (browser.ws.bufferedAmount > 1 << 20) await Bun.sleep(1);
    if (sent % 20_000 === 0) await Bun.sleep(1);
  }
  // Every listener is cut off once its buffer bound is passed; the server then holds nothing for them.
  const cutOff = (async () => {
    while (!(await ctl.ok("[stats]")).includes(" listeners=0 ")) await Bun.sleep(100);
  })();
  await within(cutOff, "every stalled listener to be cut off", 30_000);
  rss.stop();
  browser.close();
  ctl.close();
  report("stalled listeners", { listeners: LISTENERS, bufferMB: BUFFER / MB, messages: MESSAGES, baselineMB: rss.baseline / MB, peakMB: rss.peak / MB, growthMB: rss.growth / MB });
  expect(rss.growth).toBeLessThanOrEqual(GROWTH_BOUND);
}, 120_000);
