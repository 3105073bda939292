// Item 7 (watchdog half) of issue 13: while one browser does not read, every publish reports
// backpressure; the slow-consumer watchdog must not pay for every connected browser each time.

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { rawWebSocket } from "../helpers.ts";
import { ControlClient, MB, newUser, report, scale, spawnTarget, within } from "./kit.ts";

/** CPU time (user + system, in clock ticks) a process has used, from /proc/PID/stat. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

test("the watchdog's cost per shout does not grow with the number of idle browsers", async () => {
  // A limit far above what is shouted: the slow browser stays connected and backed up all along.
  const target = await spawnTarget(["--backpressure", String(512 * MB), "--max-connections", "100000"]);
  const sockets: Awaited<ReturnType<typeof rawWebSocket>>[] = [];
  try {
    const ctl = await ControlClient.connect(target.privatePort);
    const port = Number(new URL(target.publicUrl).port);
    const path = new URL(target.publicUrl).pathname;
    const channel = await ctl.ok("[newchannel]");
    const slowUser = await newUser(ctl);
    await ctl.ok(`[join] ${channel}!${slowUser.id}`);
    const slow = await rawWebSocket(port, path, { read: false });
    sockets.push(slow);
    slow.sendText(slowUser.token);
    await waitOnline(ctl, 1);
    // Fill the kernel's buffers for the slow socket, so every later shout to it meets backpressure.
    const big = "b".repeat(50_000);
    ctl.write(encodeFrames(Array.from({ length: 200 }, () => `[shout] ${channel}!${big}`)));
    await ctl.replies.take(200, "the filling shouts", 30_000);

    const connect = async (count: number) => {
      ctl.write(encodeFrames(Array.from({ length: count }, () => "[newuser]")));
      const tokens = (await ctl.replies.take(count, "new users", 30_000)).map((r) => r.slice(5));
      for (let i = 0; i < tokens.length; i += 200) {
        const batch = await Promise.all(tokens.slice(i, i + 200).map(() => rawWebSocket(port, path)));
        batch.forEach((ws, j) => ws.sendText(tokens[i + j]!));
        sockets.push(...batch);
      }
      await waitOnline(ctl, sockets.length);
    };
    const shouts = scale(3_000, 6_000);
    const perShout = async () => {
      const before = cpuTicks(target.proc.pid);
      for (let i = 0; i < shouts; i++) await ctl.call(`[shout] ${channel}!s`);
      return (cpuTicks(target.proc.pid) - before) / shouts;
    };
    const few = scale(500, 500);
    const many = scale(6_000, 9_000);
    await connect(few);
    await perShout(); // warm-up
    const costFew = await perShout();
    await connect(many - few);
    const costMany = await perShout();
    const ratio = costMany / Math.max(costFew, 1 / shouts);
    report("watchdog-scan", { few, many, shouts, ticksPerKShoutFew: costFew * 1000, ticksPerKShoutMany: costMany * 1000, ratio });
    ctl.close();
    // Twelve to eighteen times the browsers: a scan over all of them shows here as a multiple.
    expect(ratio).toBeLessThan(2.5);
  } finally {
    for (const ws of sockets) ws.socket.terminate();
    await target.stop();
  }
}, 120_000);

async function waitOnline(ctl: ControlClient, count: number): Promise<void> {
  const poll = async () => {
    for (;;) {
      const stats = await ctl.call("[stats]");
      if (Number(/online=(\d+)/.exec(stats)?.[1]) >= count) return;
      await Bun.sleep(50);
    }
  };
  await within(poll(), `${count} browsers online`, 60_000);
}
