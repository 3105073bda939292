// Routed delivery (issue 15): a node that hosts nothing for a message receives nothing for it. Real
// webtalk processes on one redis-server; each node's webtalk_bus_messages_received_total (/metrics)
// counts what it took off the bus. A small constant is allowed for the node's own housekeeping.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient, loggedIn, newUser, within } from "./helpers.ts";
import { spawnCluster, spawnNode } from "./cluster-kit.ts";
import type { Spawned } from "./process.ts";
import { haveRedis, hashLenIn, keyIn, uniquePrefix, useRedis, redisCliOn } from "./redis-server.ts";

const redis = useRedis();
/** Bus messages a node may receive for reasons of its own (none today; room for housekeeping). */
const SLACK = 5;

async function busReceived(node: Spawned): Promise<number> {
  const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  const match = /^webtalk_bus_messages_received_total (\d+)$/m.exec(text);
  if (!match) throw new Error("no webtalk_bus_messages_received_total in /metrics");
  return Number(match[1]);
}

/** The count and sum of a node's webtalk_cluster_delivery_lag_seconds. */
async function deliveryLag(node: Spawned): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  const count = /^webtalk_cluster_delivery_lag_seconds_count (\S+)$/m.exec(text);
  const sum = /^webtalk_cluster_delivery_lag_seconds_sum (\S+)$/m.exec(text);
  if (!count || !sum) throw new Error("no webtalk_cluster_delivery_lag_seconds in /metrics");
  return { count: Number(count[1]), sum: Number(sum[1]) };
}

/** The process's user + system CPU in clock ticks, from /proc/PID/stat. */
function cpuTicks(node: Spawned): number {
  const fields = readFileSync(`/proc/${node.proc.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Waits until `browser` has received `count` messages that start with `prefix`. */
function receive(browser: Browser, prefix: string, count: number, what: string, ms = 30_000): Promise<void> {
  let seen = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  const listener = (event: MessageEvent) => {
    if (String(event.data).startsWith(prefix) && ++seen === count) resolve();
  };
  browser.ws.addEventListener("message", listener);
  return within(promise, `${what} (${seen} of ${count})`, ms).finally(() => browser.ws.removeEventListener("message", listener));
}

const redisCli = (...args: string[]) => redisCliOn(redis, ...args);

describe.skipIf(!haveRedis)("routed cluster delivery", () => {
  test("a node with no browser for the shouts and whispers receives none of them", async () => {
    const [a, b] = await spawnCluster(redis, uniquePrefix("route"), 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    const browsers: Browser[] = [];
    try {
      const channel = await ctl.ok("[newchannel]");
      const users = [];
      for (let i = 0; i < 3; i++) {
        const [browser, user] = await loggedIn(b!, ctl);
        await ctl.ok(`[join] ${channel}!${user.id}`);
        browsers.push(browser);
        users.push(user);
      }
      const count = 2000;
      const before = await busReceived(a!);
      const cpuBefore = [cpuTicks(a!), cpuTicks(b!)];
      const shouts = browsers.map((browser) => receive(browser, "s", count, "the shouts"));
      ctl.write(encodeFrames(Array.from({ length: count }, (_, i) => `[shout] ${channel}!s${i}`)));
      await Promise.all(shouts);
      const whispers = browsers.map((browser) => receive(browser, "w", count, "the whispers"));
      ctl.write(encodeFrames(users.flatMap((user) => Array.from({ length: count }, (_, i) => `[whisper] ${user.id}!w${i}`))));
      await Promise.all(whispers);
      await ctl.replies.take(4 * count, "the replies", 30_000);
      const after = await busReceived(a!);
      const cpu = [cpuTicks(a!) - cpuBefore[0]!, cpuTicks(b!) - cpuBefore[1]!];
      console.log(`node A (sender, no browsers) received ${after - before} bus messages for ${4 * count} sends; CPU ticks A ${cpu[0]}, B ${cpu[1]}`);
      expect(after - before).toBeLessThanOrEqual(SLACK);
      expect(await busReceived(b!)).toBeGreaterThanOrEqual(4 * count);
      // Each whisper and shout B handed to its browsers is one lag observation; A handed none.
      const lag = await deliveryLag(b!);
      console.log(`node B's delivery lag: ${lag.count} observations, mean ${((lag.sum / lag.count) * 1000).toFixed(3)} ms`);
      expect(lag.count).toBe(4 * count);
      expect(lag.sum).toBeGreaterThan(0);
      expect((await deliveryLag(a!)).count).toBe(0);
    } finally {
      for (const browser of browsers) browser.close();
      ctl.close();
      for (const node of [a!, b!]) await node.stop("SIGKILL");
    }
  }, 90_000);

  test("events reach a node only while it has a listener", async () => {
    const [a, b] = await spawnCluster(redis, uniquePrefix("route-ev"), 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    const browsers: Browser[] = [];
    let listener: ControlClient | undefined;
    try {
      const before = await busReceived(b!);
      // Logins on A raise [online] events: no node listens, so B hears nothing of them.
      for (let i = 0; i < 10; i++) browsers.push((await loggedIn(a!, ctl))[0]);
      expect((await busReceived(b!)) - before).toBeLessThanOrEqual(SLACK);
      listener = await ControlClient.connect(b!.privatePort);
      expect(await listener.call("[listen]")).toStartWith("[ok]");
      await listener.replies.next("the epoch event");
      // [listen] answers once B hears the events channel: the very next event reaches it.
      for (let i = 0; i < 3; i++) {
        const [browser, user] = await loggedIn(a!, ctl);
        browsers.push(browser);
        expect(await listener.replies.next("the [online] event")).toBe(`[online] ${user.id}`);
      }
    } finally {
      for (const browser of browsers) browser.close();
      listener?.close();
      ctl.close();
      for (const node of [a!, b!]) await node.stop("SIGKILL");
    }
  }, 60_000);

  test("[join] then at once [shout] reaches the browser on the other node, every time", async () => {
    const [a, b] = await spawnCluster(redis, uniquePrefix("route-js"), 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    let browser: Browser | undefined;
    try {
      const [page, user] = await loggedIn(b!, ctl);
      browser = page;
      const rounds = 200;
      const channels = [];
      ctl.write(encodeFrames(Array.from({ length: rounds }, () => "[newchannel]")));
      for (const reply of await ctl.replies.take(rounds, "the channels", 30_000)) channels.push(reply.slice(5));
      const got = receive(browser, "js", rounds, "the shouts sent right after each join");
      ctl.write(encodeFrames(channels.flatMap((c, i) => [`[join] ${c}!${user.id}`, `[shout] ${c}!js${i}`])));
      const replies = await ctl.replies.take(2 * rounds, "the replies", 30_000);
      expect(replies.filter((r) => !r.startsWith("[ok]"))).toEqual([]);
      await got;
    } finally {
      browser?.close();
      ctl.close();
      for (const node of [a!, b!]) await node.stop("SIGKILL");
    }
  }, 60_000);

  test("pipelined [leave] then [shout]: the browser on the other node never gets it; [join] then [shout] again: it does", async () => {
    const [a, b] = await spawnCluster(redis, uniquePrefix("route-ls"), 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    let browser: Browser | undefined;
    try {
      const channel = await ctl.ok("[newchannel]");
      const [page, user] = await loggedIn(b!, ctl);
      browser = page;
      const texts: string[] = [];
      browser.ws.addEventListener("message", (event) => texts.push(String(event.data)));
      const rounds = 100;
      // Each round: in, shout (must arrive), out, shout (must not), all written at once.
      ctl.write(
        encodeFrames(
          Array.from({ length: rounds }, (_, i) => [`[join] ${channel}!${user.id}`, `[shout] ${channel}!in${i}`, `[leave] ${channel}!${user.id}`, `[shout] ${channel}!out${i}`]).flat(),
        ),
      );
      const replies = await ctl.replies.take(4 * rounds, "the replies", 30_000);
      expect(replies.filter((r) => !r.startsWith("[ok]"))).toEqual([]);
      await within((async () => { while (texts.filter((t) => t.startsWith("in")).length < rounds) await Bun.sleep(20); })(), "every shout sent while a member", 20_000);
      // A marker whisper after everything: once it is in, nothing else is on its way.
      await ctl.ok(`[whisper] ${user.id}!end`);
      await within((async () => { while (!texts.includes("end")) await Bun.sleep(20); })(), "the marker whisper");
      expect(texts.filter((t) => t.startsWith("out"))).toEqual([]);
      expect(texts.filter((t) => t.startsWith("in"))).toEqual(Array.from({ length: rounds }, (_, i) => `in${i}`));
      // Unknown IDs still answer exactly, pipelined.
      ctl.write(encodeFrames([`[join] 99!${user.id}`, `[leave] ${channel}!77`]));
      expect(await ctl.replies.take(2, "the errors")).toEqual(["[error] no such channel 99", "[error] no such user 77"]);
    } finally {
      browser?.close();
      ctl.close();
      for (const node of [a!, b!]) await node.stop("SIGKILL");
    }
  }, 60_000);

  test("a node receives a channel's shouts while a member is logged in there, and not after", async () => {
    const [a, b] = await spawnCluster(redis, uniquePrefix("route-io"), 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    try {
      const channel = await ctl.ok("[newchannel]");
      const user = await newUser(ctl);
      await ctl.ok(`[join] ${channel}!${user.id}`);
      const [browser] = await loggedIn(b!, ctl, user);
      const got = receive(browser, "in", 100, "the shouts while logged in");
      ctl.write(encodeFrames(Array.from({ length: 100 }, (_, i) => `[shout] ${channel}!in${i}`)));
      await got;
      await ctl.replies.take(100, "the replies");
      browser.close();
      await within(browser.closed, "the browser closed");
      // The release is asynchronous: wait until Redis says the user is offline.
      for (const deadline = Date.now() + 5000; Date.now() < deadline && (await ctl.ok(`[online] ${user.id}`)) !== "0"; ) await Bun.sleep(20);
      const before = await busReceived(b!);
      ctl.write(encodeFrames(Array.from({ length: 500 }, (_, i) => `[shout] ${channel}!out${i}`)));
      await ctl.replies.take(500, "the replies");
      expect(await ctl.ok("[ping]")).toBeTruthy();
      expect((await busReceived(b!)) - before).toBeLessThanOrEqual(SLACK);
    } finally {
      ctl.close();
      for (const node of [a!, b!]) await node.stop("SIGKILL");
    }
  }, 60_000);

  test("a node killed with SIGKILL: shouts go on for the others, and its routing entries are removed", async () => {
    const prefix = uniquePrefix("route-kill");
    const [a, b] = await spawnCluster(redis, prefix, 2);
    const c = await spawnNode(redis, prefix, 1);
    const ctl = await ControlClient.connect(a!.privatePort);
    const browsers: Browser[] = [];
    try {
      const channel = await ctl.ok("[newchannel]");
      for (const node of [b!, c]) {
        const [browser, user] = await loggedIn(node, ctl);
        await ctl.ok(`[join] ${channel}!${user.id}`);
        browsers.push(browser);
      }
      expect(Number(redisCli("HLEN", keyIn(prefix, `chnodes:${channel}`, Number(channel))))).toBe(2);
      await c.stop("SIGKILL");
      const got = receive(browsers[0]!, "k", 100, "the shouts after a node died");
      ctl.write(encodeFrames(Array.from({ length: 100 }, (_, i) => `[shout] ${channel}!k${i}`)));
      await got;
      await ctl.replies.take(100, "the replies");
      // Its lease (1 s) lapses; a live node's renewal then removes what routed messages to it.
      let entries = "";
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await Bun.sleep(100)) {
        entries = redisCli("HKEYS", keyIn(prefix, `chnodes:${channel}`, Number(channel)));
        if (entries.split("\n").length === 1) break;
      }
      expect(entries.split("\n").length).toBe(1);
      expect(redisCli("HKEYS", keyIn(prefix, "chnodes:1", 1)).split("\n").length).toBe(1);
      // Nothing else keeps naming the dead node: its user is offline, its renewal record gone.
      expect(hashLenIn(redis, prefix, "online")).toBe(1);
      expect(redisCli("HLEN", keyIn(prefix, "nodeseen"))).toBe("2");
      expect(redisCli("SCARD", keyIn(prefix, "nodes"))).toBe("2");
    } finally {
      for (const browser of browsers) browser.close();
      ctl.close();
      for (const node of [a!, b!, c]) await node.stop("SIGKILL");
    }
  }, 60_000);

  test("a live node paused past its lease and the sweep's grace gets the channel's shouts again once it is back", async () => {
    const prefix = uniquePrefix("route-lapse");
    const a = await spawnNode(redis, prefix, 2);
    const b = await spawnNode(redis, prefix, 1);
    const ctl = await ControlClient.connect(a.privatePort);
    let browser: Browser | undefined;
    try {
      const channel = await ctl.ok("[newchannel]");
      const [page, user] = await loggedIn(b, ctl);
      browser = page;
      await ctl.ok(`[join] ${channel}!${user.id}`);
      expect(Number(redisCli("HLEN", keyIn(prefix, `chnodes:${channel}`, Number(channel))))).toBe(1);
      b.proc.kill("SIGSTOP");
      // B's lease (1 s) lapses; after its grace (5 leases) A's renewal sweeps B's users and routes.
      let swept = false;
      for (const deadline = Date.now() + 15_000; !swept && Date.now() < deadline; await Bun.sleep(200)) {
        swept = Number(redisCli("HLEN", keyIn(prefix, `chnodes:${channel}`, Number(channel)))) === 0;
      }
      expect(swept).toBe(true);
      b.proc.kill("SIGCONT");
      // B finds its lease gone at its next renewal and claims its users again: shouts reach it again.
      let back = false;
      for (let i = 0; !back && i < 100; i++) {
        await ctl.ok(`[shout] ${channel}!probe${i}`);
        back = await browser.messages.next("a shout", 100).then(() => true, () => false);
      }
      expect(back).toBe(true);
      const got = receive(browser, "after", 100, "every shout once B is back");
      ctl.write(encodeFrames(Array.from({ length: 100 }, (_, i) => `[shout] ${channel}!after${i}`)));
      await got;
      await ctl.replies.take(100, "the replies");
    } finally {
      browser?.close();
      ctl.close();
      b.proc.kill("SIGCONT");
      for (const node of [a, b]) await node.stop("SIGKILL");
    }
  }, 60_000);
});
