// chnodes:C (the per-channel count of each node's online members, route-redis.ts) must equal what it
// summarizes: for each member U of C with online[U] = N, one for N. Real webtalk processes on one
// redis-server while browsers log in, log out and move between nodes, members join and leave, users
// are killed, and one node is paused (SIGSTOP) past its lease. Afterwards, Redis is compared with the
// truth it holds itself: a count that drifts routes shouts to nodes that host nobody, or to none.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

function cli(...args: string[]): string[] {
  const out = Bun.spawnSync(["redis-cli", "-p", String(redis.port), ...args]).stdout.toString().trim();
  return out === "" ? [] : out.split("\n");
}

function hash(...args: string[]): Record<string, string> {
  const flat = cli(...args);
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

describe.skipIf(!haveRedis)("chnodes under churn", () => {
  test("the route counts equal the memberships of online users, per node", async () => {
    const prefix = uniquePrefix("churn");
    const nodes = await spawnCluster(redis, prefix, 3);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const browsers = new Map<number, Browser>();
    let stopped = false;
    try {
      const channels: string[] = [];
      for (let i = 0; i < 3; i++) channels.push(await ctls[0]!.ok("[newchannel]"));
      let users: User[] = [];
      for (let i = 0; i < 12; i++) users.push(await newUser(ctls[0]!));
      let seed = 7;
      const rand = (n: number) => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) % n;
      };
      const end = Date.now() + 9_000;
      let paused = false;
      const replies: Record<string, number> = {};
      const started = Date.now();
      while (Date.now() < end) {
        if (!paused && Date.now() - started > 2_000) {
          process.kill(nodes[2]!.proc.pid, "SIGSTOP");
          stopped = paused = true;
          setTimeout(() => {
            process.kill(nodes[2]!.proc.pid, "SIGCONT");
            stopped = false;
          }, 3_500);
        }
        const user = users[rand(users.length)]!;
        const op = rand(10);
        const ctl = ctls[rand(2)]!;
        if (op < 3) {
          const node = nodes[rand(paused && stopped ? 2 : 3)]!;
          const b = await Browser.open(node.publicUrl).catch(() => undefined);
          if (b) {
            b.send(user.token);
            browsers.get(user.id)?.close();
            browsers.set(user.id, b);
          }
        } else if (op < 5) {
          browsers.get(user.id)?.close();
          browsers.delete(user.id);
        } else if (op < 9) {
          const frames = [`[${rand(2) ? "join" : "leave"}] ${channels[rand(3)]}!${user.id}`, `[shout] ${channels[rand(3)]}!x`];
          ctl.write(encodeFrames(frames));
          const r = await ctl.replies.take(2, "replies", 10_000);
          replies[r[0]!] = (replies[r[0]!] ?? 0) + 1;
        } else {
          await ctl.call(`[killuser] ${user.id}`);
          browsers.get(user.id)?.close();
          browsers.delete(user.id);
          users = users.filter((u) => u !== user);
          users.push(await newUser(ctl));
        }
        await Bun.sleep(rand(20));
      }
      if (stopped) await Bun.sleep(4_000);
      await Bun.sleep(3_000); // renewals, reclaims and sweeps settle
      const online = hash("HGETALL", `${prefix}online`);
      const found: Record<string, Record<string, string>> = {};
      const truth: Record<string, Record<string, string>> = {};
      for (const channel of channels) {
        found[channel] = hash("HGETALL", `${prefix}chnodes:${channel}`);
        const counts: Record<string, number> = {};
        for (const member of cli("ZRANGE", `${prefix}members:${channel}`, "0", "-1")) {
          const node = online[member];
          if (node) counts[node] = (counts[node] ?? 0) + 1;
        }
        truth[channel] = Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, String(v)]));
      }
      expect(found).toEqual(truth);
    } finally {
      if (stopped) process.kill(nodes[2]!.proc.pid, "SIGCONT");
      for (const b of browsers.values()) b.close();
      for (const ctl of ctls) ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 60_000);
});
