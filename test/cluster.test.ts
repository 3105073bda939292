// Several webtalk nodes as one, on a real Redis: cross-node delivery and control, cluster-wide
// presence and login rules, a node killed, Redis lost and back, a whole-cluster restart.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../src/config/schema.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, loggedIn, newUser, startTestServer, within } from "./helpers.ts";
import { MAIN, spawnServer } from "./process.ts";
import { haveRedis, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-cluster-"));
let redis: TestRedis;

beforeAll(async () => {
  if (haveRedis) redis = await startRedis({ persistent: join(dir, "redis") });
});
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** N nodes sharing one Redis under a prefix of their own, with a control connection to each. */
async function cluster(count: number, overrides: Partial<Config> = {}) {
  const prefix = uniquePrefix("cluster");
  const nodes: Webtalk[] = [];
  const ctls: ControlClient[] = [];
  for (let i = 0; i < count; i++) {
    const node = await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 1, ...overrides });
    nodes.push(node);
    ctls.push(await ControlClient.connect(node.private.port));
  }
  return {
    prefix,
    nodes,
    ctls,
    async stop() {
      for (const c of ctls) c.close();
      for (const n of nodes) await n.stop();
    },
  };
}

/** Waits for the next event about `user` on a listening connection. */
async function eventAbout(c: ControlClient, user: number): Promise<string> {
  for (let i = 0; i < 1000; i++) {
    const frame = await c.replies.next("an event");
    if (frame.startsWith("[ok]") || frame.startsWith("[error]")) continue;
    if (Number(/^\[\w+\] (\d+)/.exec(frame)?.[1]) === user) return frame;
  }
  throw new Error(`no event about user ${user}`);
}

describe.skipIf(!haveRedis)("cluster", () => {
  test("IDs are unique across nodes; whisper, shout, join and leave cross nodes, in order", async () => {
    const c = await cluster(3);
    const [a, b, third] = c.ctls as [ControlClient, ControlClient, ControlClient];
    const ids = [await newUser(a), await newUser(b), await newUser(third), await newUser(a)].map((u) => u.id);
    expect(new Set(ids).size).toBe(4);
    const [browser, user] = await loggedIn(c.nodes[1]!, b); // the browser is on node B
    const channel = await a.ok("[newchannel]");
    expect(Number(await third.ok("[newchannel]"))).toBeGreaterThan(Number(channel));
    await a.ok(`[join] ${channel}!${user.id}`);
    // Pipelined on node A: every message reaches node B's browser, in order.
    const frames = Array.from({ length: 100 }, (_, i) => (i % 2 ? `[shout] ${channel}!m${i}` : `[whisper] ${user.id}!m${i}`));
    for (const f of frames) a.write(new TextEncoder().encode(`${String(new TextEncoder().encode(f).length).padStart(5, "0")}${f}`));
    await a.replies.take(frames.length);
    expect(await browser.messages.take(100)).toEqual(frames.map((_, i) => `m${i}`));
    await third.ok(`[leave] ${channel}!${user.id}`);
    await a.ok(`[shout] ${channel}!after leave`);
    await a.ok(`[whisper] ${user.id}!marker`);
    expect(await browser.messages.next()).toBe("marker");
    browser.close();
    await c.stop();
  });

  test("kill and kick on any node reach the browser wherever it is", async () => {
    const c = await cluster(2);
    const [a, b] = c.ctls as [ControlClient, ControlClient];
    const [kicked, k] = await loggedIn(c.nodes[1]!, b);
    expect(await a.call(`[kick] ${k.id}`)).toBe("[ok] user kicked");
    expect((await kicked.closedWithin()).code).toBe(4005);
    const [killed, d] = await loggedIn(c.nodes[1]!, b);
    expect(await a.call(`[killuser] ${d.id}`)).toBe("[ok] user killed");
    expect((await killed.closedWithin()).code).toBe(4004);
    expect(await b.call(`[whisper] ${d.id}!x`)).toBe(`[error] no such user ${d.id}`);
    await c.stop();
  });

  test("presence, counts, members and stats are cluster-wide; events are heard on every node", async () => {
    const c = await cluster(2);
    const [a, b] = c.ctls as [ControlClient, ControlClient];
    const listener = await ControlClient.connect(c.nodes[0]!.private.port);
    await listener.ok("[listen]");
    const [browser, user] = await loggedIn(c.nodes[1]!, b);
    expect(await eventAbout(listener, user.id)).toBe(`[online] ${user.id}`);
    expect(await a.call(`[online] ${user.id}`)).toBe("[ok] 1");
    const offline = await newUser(a);
    const channel = await a.ok("[newchannel]");
    await a.ok(`[join] ${channel}!${user.id}`);
    await b.ok(`[join] ${channel}!${offline.id}`);
    expect(await a.call(`[count] ${channel}`)).toBe("[ok] 2!1");
    expect(await b.call(`[members] ${channel}`)).toBe(`[ok] ${[user.id, offline.id].sort((x, y) => x - y).join(",")}`);
    await a.ok(`[whisper] ${user.id}!counted`);
    expect(await browser.messages.next()).toBe("counted");
    // Other nodes' counters are as of their last lease renewal (every third of the lease).
    let stats = "";
    for (let i = 0; i < 100 && !/ control_connections=3 /.test(stats); i++) {
      stats = await a.call("[stats]");
      if (!/ control_connections=3 /.test(stats)) await Bun.sleep(20);
    }
    expect(stats).toMatch(/ online=1 /);
    expect(stats).toMatch(/ users=2 /);
    expect(stats).toMatch(/ listeners=1 /);
    expect(stats).toMatch(/ control_connections=3 /);
    browser.close();
    expect(await eventAbout(listener, user.id)).toBe(`[offline] ${user.id}`);
    expect(await a.call(`[online] ${user.id}`)).toBe("[ok] 0");
    listener.close();
    await c.stop();
  });

  test("one browser per user across nodes: a newer login on B replaces A's; with reject it is refused", async () => {
    const replace = await cluster(2);
    const [older, user] = await loggedIn(replace.nodes[0]!, replace.ctls[0]!);
    const newer = await Browser.open(replace.nodes[1]!.publicUrl);
    newer.send(user.token);
    expect(await older.closedWithin()).toEqual({ code: 4002, reason: "replaced by another login" });
    await replace.ctls[0]!.ok(`[whisper] ${user.id}!to B`);
    expect(await newer.messages.next()).toBe("to B");
    newer.close();
    await replace.stop();

    const reject = await cluster(2, { duplicate: "reject" });
    const [first, u] = await loggedIn(reject.nodes[0]!, reject.ctls[0]!);
    const second = await Browser.open(reject.nodes[1]!.publicUrl);
    second.send(u.token);
    expect((await second.closedWithin()).code).toBe(4002);
    await reject.ctls[1]!.ok(`[whisper] ${u.id}!still A`);
    expect(await first.messages.next()).toBe("still A");
    first.close();
    await reject.stop();
  });

  test("a node killed with SIGKILL releases its users after the lease; their held messages survive", async () => {
    const prefix = uniquePrefix("kill");
    const args = ["--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--redis", redis.url, "--redis-prefix", prefix];
    const doomed = await spawnServer(["bun", MAIN, ...args, "--lease", "1", "--duplicate", "reject"], { cwd: dir });
    const survivor = await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 1, duplicate: "reject" });
    const ctl = await ControlClient.connect(survivor.private.port);
    const user = await newUser(ctl);
    const browser = await Browser.open(doomed.publicUrl);
    browser.send(user.token);
    for (let i = 0; i < 200 && (await ctl.call(`[online] ${user.id}`)) !== "[ok] 1"; i++) await Bun.sleep(10);
    doomed.proc.kill("SIGKILL");
    await within(doomed.proc.exited, "the node to die");
    await browser.closedWithin();
    // Within the lease the user still counts as online on the dead node...
    const early = await Browser.open(survivor.publicUrl);
    early.send(user.token);
    expect((await early.closedWithin()).code).toBe(4002);
    // ...and once it lapses, whispers are held and the user logs in on the surviving node.
    let reply = "";
    for (let i = 0; i < 100 && reply !== "[ok] message queued"; i++) {
      reply = await ctl.call(`[whisper] ${user.id}!kept for you`);
      if (reply !== "[ok] message queued") await Bun.sleep(50);
    }
    expect(reply).toBe("[ok] message queued");
    const again = await Browser.open(survivor.publicUrl);
    again.send(user.token);
    expect(await again.messages.next()).toBe("kept for you");
    again.close();
    ctl.close();
    await survivor.stop();
    await doomed.stop();
  }, 30_000);

  test("Redis lost mid-traffic: prompt [error] backend unavailable, browsers stay, all recovers", async () => {
    const c = await cluster(2);
    const [a, b] = c.ctls as [ControlClient, ControlClient];
    const [browser, user] = await loggedIn(c.nodes[1]!, b);
    const channel = await a.ok("[newchannel]");
    await a.ok(`[join] ${channel}!${user.id}`);
    await a.ok(`[shout] ${channel}!before`);
    expect(await browser.messages.next("the shout before the outage")).toBe("before");
    await redis.stop();
    const started = performance.now();
    expect(await a.call(`[shout] ${channel}!lost`)).toBe("[error] backend unavailable");
    expect(await b.call("[newuser]")).toBe("[error] backend unavailable");
    expect(performance.now() - started).toBeLessThan(4500); // prompt: never the client's own timeout
    await redis.restart();
    // Recovered when a whisper reaches the browser again (the nodes reconnect and resubscribe by themselves).
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i++) {
      if ((await a.call(`[whisper] ${user.id}!probe`)) !== "[ok] message sent") {
        await Bun.sleep(50);
        continue;
      }
      recovered = await browser.messages.next("a probe", 200).then(() => true, () => false);
    }
    expect(recovered).toBe(true);
    expect(await a.call(`[shout] ${channel}!back`)).toBe("[ok] message sent");
    let next = await browser.messages.next("the shout after recovery");
    while (next === "probe") next = await browser.messages.next("the shout after recovery");
    expect(next).toBe("back"); // the same browser, never disconnected
    browser.close();
    await c.stop();
  }, 30_000);

  test("a whole-cluster restart keeps users, channels, memberships, the store and held messages", async () => {
    const prefix = uniquePrefix("restart");
    const first = await startTestServer({ redis: redis.url, redisPrefix: prefix });
    let ctl = await ControlClient.connect(first.private.port);
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    await ctl.ok("[store] motd!hello");
    await ctl.ok(`[whisper] ${user.id}!held across the restart`);
    ctl.close();
    await first.stop();

    const second = await startTestServer({ redis: redis.url, redisPrefix: prefix });
    ctl = await ControlClient.connect(second.private.port);
    expect(await ctl.call("[retrieve] motd")).toBe("[ok] hello");
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 1!0");
    const browser = await Browser.open(second.publicUrl);
    browser.send(user.token);
    expect(await browser.messages.next()).toBe("held across the restart");
    await ctl.ok(`[shout] ${channel}!still a member`);
    expect(await browser.messages.next()).toBe("still a member");
    expect((await newUser(ctl)).id).toBeGreaterThan(user.id);
    browser.close();
    ctl.close();
    await second.stop();
  });
});
