// Measurement (issue 15, "batching on arrival"): what a node spends per delivery when the bus brings
// shouts in bursts (many in one read: pipelined PUBLISHes) versus one at a time. Bun's publish writes
// each browser's messages of one event-loop turn together, so a burst delivered from the subscriber
// callback in one turn should cost about what plain mode does. Printed, never asserted as a timing.

import { describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { readFileSync } from "node:fs";
import { encodeBus } from "../src/cluster/bus.ts";
import { ControlClient, newUser, within } from "./helpers.ts";
import { spawnNode } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();
const BROWSERS = 300;
const SHOUTS = 2000;

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

describe.skipIf(!haveRedis)("a node's deliveries from its bus channel", () => {
  test("a burst of shouts costs per delivery what one turn's publishes cost; one at a time, one write each", async () => {
    const prefix = uniquePrefix("arrival");
    const node = await spawnNode(redis, prefix, 5);
    const ctl = await ControlClient.connect(node.privatePort);
    const pub = new RedisClient(redis.url);
    const sockets: WebSocket[] = [];
    try {
      const channel = Number(await ctl.ok("[newchannel]"));
      let got = 0;
      for (let i = 0; i < BROWSERS; i++) {
        const user = await newUser(ctl);
        await ctl.ok(`[join] ${channel}!${user.id}`);
        const ws = new WebSocket(node.publicUrl);
        await within(new Promise((r) => ws.addEventListener("open", r)), "a browser");
        ws.addEventListener("message", () => got++);
        ws.send(user.token);
        sockets.push(ws);
      }
      // Logged in once the node counts all of them in the channel.
      for (const deadline = Date.now() + 10_000; Date.now() < deadline && (await ctl.ok(`[count] ${channel}`)) !== `${BROWSERS}!${BROWSERS}`; ) await Bun.sleep(50);
      const hosts = Object.keys((await pub.send("HGETALL", [`${prefix}chnodes:${channel}`])) as Record<string, string>);
      expect(hosts.length).toBe(1);
      const to = `${prefix}to:${hosts[0]}`;
      const text = (i: number) => encodeBus({ k: "c", c: channel, m: `m${i}`, o: i + 1 });
      for (const mode of ["burst", "one at a time"]) {
        got = 0;
        const before = cpuTicks(node.proc.pid);
        if (mode === "burst") await Promise.all(Array.from({ length: SHOUTS }, (_, i) => pub.send("PUBLISH", [to, text(i)])));
        else for (let i = 0; i < SHOUTS; i++) await pub.send("PUBLISH", [to, text(i)]);
        await within((async () => { while (got < BROWSERS * SHOUTS) await Bun.sleep(20); })(), "every delivery", 60_000);
        const ticks = cpuTicks(node.proc.pid) - before;
        console.log(`${mode}: ${BROWSERS * SHOUTS} deliveries, node CPU ${ticks} ticks = ${((ticks * 10_000) / (BROWSERS * SHOUTS)).toFixed(3)} µs per delivery`);
      }
    } finally {
      for (const ws of sockets) ws.close();
      pub.close();
      ctl.close();
      await node.stop("SIGKILL");
    }
  }, 120_000);
});
