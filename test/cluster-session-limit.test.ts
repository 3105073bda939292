// --sessions N exact across a cluster (issue 17): a user's browsers on several nodes count together
// (sess:U, src/cluster/session-limit.ts). Real webtalk processes on one real redis-server; the set is
// read with redis-cli. Before this, each node counted its own: three nodes let one user have 3×N.

import { describe, expect, test } from "bun:test";
import { OWN_KEY } from "../src/state/lineage.ts";
import { RssSampler } from "./attack/kit.ts";
import { spawnNode } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, within, type CloseInfo, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { haveRedis, keyIn, keysPattern, redisCliOn, uniquePrefix, useRedis } from "./redis-server.ts";

const REPLACED = { code: 4002, reason: "session limit: replaced by a newer login" };
const REFUSED = { code: 4002, reason: "session limit: too many sessions" };

const redis = useRedis();

const redisCli = (...args: string[]) => redisCliOn(redis, ...args);

/** The user's browsers Redis counts, cluster-wide. */
function counted(prefix: string, user: number): number {
  return Number(redisCli("ZCARD", keyIn(prefix, `sess:${user}`, user)));
}

/** `count` nodes on one prefix, lease 1 s, `--sessions 2`, and a control connection to the first. */
async function cluster(count: number, duplicate: "replace" | "reject") {
  const prefix = uniquePrefix("seslimit");
  const nodes: Spawned[] = [];
  for (let i = 0; i < count; i++) nodes.push(await spawnNode(redis, prefix, 1, ["--sessions", "2", "--duplicate", duplicate]));
  const ctl = await ControlClient.connect(nodes[0]!.privatePort);
  const tabs: Tab[] = [];
  return {
    prefix,
    nodes,
    ctl,
    tabs,
    async stop() {
      for (const tab of tabs) tab.browser.close();
      ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    },
  };
}

/** A webtalk.v2 tab and how its login ended: admitted (`#epoch`) or closed. */
interface Tab {
  browser: Browser;
  ended: CloseInfo | undefined;
}

/** Opens a tab of `user` on `node` and sends its login; resolves once it is admitted or closed. */
async function login(node: Spawned, user: User, tabs: Tab[]): Promise<Tab> {
  const browser = await Browser.open(node.publicUrl, "webtalk.v2");
  const tab: Tab = { browser, ended: undefined };
  tabs.push(tab);
  void browser.closed.then((info) => (tab.ended = info));
  browser.send(user.token);
  await within(Promise.race([browser.messages.next("#epoch"), browser.closed]), "the login to be decided");
  return tab;
}

function open(tabs: Tab[]): number {
  return tabs.filter((tab) => tab.ended === undefined).length;
}

describe.skipIf(!haveRedis)("--sessions 2 across three nodes", () => {
  test("replace: tabs on node after node; the oldest cluster-wide is closed first (4002), never more than 2", async () => {
    const c = await cluster(3, "replace");
    try {
      const user = await newUser(c.ctl);
      const order = [0, 1, 2, 0, 1, 2];
      const seen: Tab[] = [];
      for (const [i, n] of order.entries()) {
        const tab = await login(c.nodes[n]!, user, c.tabs);
        expect(tab.ended).toBeUndefined();
        seen.push(tab);
        expect(counted(c.prefix, user.id)).toBeLessThanOrEqual(2);
        if (i >= 2) {
          // The oldest still open, on whichever node it is, goes with this reason.
          const oldest = seen[i - 2]!;
          expect(await oldest.browser.closedWithin("the oldest tab to be closed")).toEqual(REPLACED);
        }
        for (let j = 0; j < i - 2; j++) expect(seen[j]!.ended).toBeDefined();
        if (i >= 1) expect(seen[i - 1]!.ended).toBeUndefined();
        expect(open(c.tabs)).toBe(Math.min(i + 1, 2));
      }
      expect(counted(c.prefix, user.id)).toBe(2);
    } finally {
      await c.stop();
    }
  }, 60_000);

  test("reject: a third tab anywhere is refused (4002) and the first two stay; a closed tab frees its slot", async () => {
    const c = await cluster(3, "reject");
    try {
      const user = await newUser(c.ctl);
      const first = await login(c.nodes[0]!, user, c.tabs);
      const second = await login(c.nodes[1]!, user, c.tabs);
      const third = await login(c.nodes[2]!, user, c.tabs);
      expect(await third.browser.closedWithin()).toEqual(REFUSED);
      const fourth = await login(c.nodes[0]!, user, c.tabs);
      expect(await fourth.browser.closedWithin()).toEqual(REFUSED);
      expect(first.ended).toBeUndefined();
      expect(second.ended).toBeUndefined();
      expect(counted(c.prefix, user.id)).toBe(2);

      first.browser.close();
      await first.browser.closedWithin();
      // Its node frees the slot once it hears of the close: a later login on another node gets it.
      let admitted: Tab | undefined;
      for (let attempt = 0; attempt < 50 && !admitted; attempt++) {
        const tab = await login(c.nodes[2]!, user, c.tabs);
        if (tab.ended === undefined) admitted = tab;
        else await Bun.sleep(100);
      }
      expect(admitted).toBeDefined();
      expect(second.ended).toBeUndefined();
      expect(counted(c.prefix, user.id)).toBe(2);
    } finally {
      await c.stop();
    }
  }, 60_000);

  test("a node killed (-9) holding a session frees its slot after the sweep", async () => {
    const c = await cluster(3, "reject");
    try {
      const user = await newUser(c.ctl);
      await login(c.nodes[0]!, user, c.tabs);
      await login(c.nodes[1]!, user, c.tabs);
      await c.nodes[1]!.stop("SIGKILL");
      // Right after, the dead node's session still counts (its lease has not lapsed).
      const early = await login(c.nodes[2]!, user, c.tabs);
      expect(await early.browser.closedWithin()).toEqual(REFUSED);
      let admitted: Tab | undefined;
      const deadline = Date.now() + 30_000;
      while (!admitted && Date.now() < deadline) {
        const tab = await login(c.nodes[2]!, user, c.tabs);
        if (tab.ended === undefined) admitted = tab;
        else await Bun.sleep(250);
      }
      expect(admitted).toBeDefined();
      expect(counted(c.prefix, user.id)).toBe(2);
      // The killed node's tab was cut (its socket is gone); the first and the new one are open.
      expect(open(c.tabs)).toBe(2);
    } finally {
      await c.stop();
    }
  }, 60_000);
});

describe.skipIf(!haveRedis)("--sessions 2: a node paused past the sweep", () => {
  test("comes back to find the user at the limit elsewhere: its own tab is closed (4002), never 3 open", async () => {
    const c = await cluster(3, "replace");
    try {
      const user = await newUser(c.ctl);
      const paused = await login(c.nodes[2]!, user, c.tabs);
      const ctlB = await ControlClient.connect(c.nodes[1]!.privatePort);
      try {
        c.nodes[2]!.proc.kill("SIGSTOP");
        // Lease 1 s, sweep grace 5 leases: once the user counts as offline and the sweep has run,
        // node C's browser is no longer counted, and two new tabs fit.
        const deadline = Date.now() + 20_000;
        while (counted(c.prefix, user.id) > 0 && Date.now() < deadline) await Bun.sleep(200);
        expect(counted(c.prefix, user.id)).toBe(0);
        const a = await login(c.nodes[0]!, user, c.tabs);
        const b = await login(c.nodes[1]!, user, c.tabs);
        expect(a.ended).toBeUndefined();
        expect(b.ended).toBeUndefined();
        c.nodes[2]!.proc.kill("SIGCONT");
        expect(await paused.browser.closedWithin("the paused node's tab to be closed")).toEqual(REPLACED);
        expect(a.ended).toBeUndefined();
        expect(b.ended).toBeUndefined();
        expect(counted(c.prefix, user.id)).toBe(2);
        expect(await ctlB.ok(`[online] ${user.id}`)).toBe("1");
      } finally {
        c.nodes[2]!.proc.kill("SIGCONT");
        ctlB.close();
      }
    } finally {
      await c.stop();
    }
  }, 60_000);
});

describe.skipIf(!haveRedis)("--sessions 2: every key it writes is one the lineage's wipe knows", () => {
  test("sess:U matches OWN_KEY (a data-loss wipe would otherwise leave it behind)", async () => {
    const c = await cluster(2, "replace");
    try {
      const user = await newUser(c.ctl);
      await login(c.nodes[0]!, user, c.tabs);
      await login(c.nodes[1]!, user, c.tabs);
      const { pattern, nameOf } = keysPattern(c.prefix);
      const keys = redisCli("--scan", "--pattern", pattern).split("\n").filter(Boolean);
      expect(keys).toContain(keyIn(c.prefix, `sess:${user.id}`, user.id));
      expect(keys.map((key) => nameOf(key) ?? key).filter((name) => !OWN_KEY.test(name))).toEqual([]);
    } finally {
      await c.stop();
    }
  }, 60_000);
});

describe.skipIf(!haveRedis)("--sessions 2: tabs logging in at once on two nodes", () => {
  for (const duplicate of ["reject", "replace"] as const) {
    test(`${duplicate}: six tabs at once never leave more than 2 open`, async () => {
      const c = await cluster(2, duplicate);
      try {
        const ids = c.nodes.map((node) => /cluster node (\S+) on Redis/.exec(node.output())![1]!);
        for (let round = 0; round < 3; round++) {
          const user = await newUser(c.ctl);
          const channel = await c.ctl.ok("[newchannel]");
          await c.ctl.ok(`[join] ${channel}!${user.id}`);
          const tabs: Tab[] = [];
          const nodeOf = new Map<Tab, string>();
          await Promise.all(
            Array.from({ length: 6 }, async (_, i) => nodeOf.set(await login(c.nodes[i % 2]!, user, tabs), ids[i % 2]!)),
          );
          c.tabs.push(...tabs);
          if (duplicate === "reject") {
            expect(open(tabs)).toBe(2);
            for (const tab of tabs) if (tab.ended) expect(tab.ended).toEqual(REFUSED);
          } else {
            // Each admitted login closes one older tab; all but two are closed in the end.
            const deadline = Date.now() + 10_000;
            while (open(tabs) > 2 && Date.now() < deadline) await Bun.sleep(20);
            expect(open(tabs)).toBe(2);
          }
          expect(counted(c.prefix, user.id)).toBe(2);
          // Routing stays exact: the user is online, and counted in the channel, on the nodes of its open tabs only.
          const holding = [...new Set(tabs.filter((tab) => !tab.ended).map((tab) => nodeOf.get(tab)!))].sort();
          const settle = Date.now() + 5_000;
          const online = () => redisCli("HGET", keyIn(c.prefix, "online", user.id), String(user.id)).split(",").filter(Boolean).sort();
          while (JSON.stringify(online()) !== JSON.stringify(holding) && Date.now() < settle) await Bun.sleep(20);
          expect(online()).toEqual(holding);
          const routes = redisCli("HGETALL", keyIn(c.prefix, `chnodes:${channel}`, Number(channel))).split("\n").filter(Boolean);
          expect(Object.fromEntries(Array.from({ length: routes.length / 2 }, (_, i) => [routes[2 * i]!, routes[2 * i + 1]!]))).toEqual(
            Object.fromEntries(holding.map((node) => [node, "1"])),
          );
        }
      } finally {
        await c.stop();
      }
    }, 60_000);
  }
});

describe.skipIf(!haveRedis)("attack: one user re-logging in a loop across two nodes", () => {
  test("RSS stays bounded and sess:U stays at the limit", async () => {
    const c = await cluster(2, "replace");
    try {
      const user = await newUser(c.ctl);
      const LOGINS = 400;
      // Warm up, then measure: what a login costs must not stay behind it.
      const warm: Tab[] = [];
      for (let i = 0; i < 40; i++) await login(c.nodes[i % 2]!, user, warm);
      for (const tab of warm) tab.browser.close();
      await Bun.sleep(300);
      const samplers = c.nodes.map((node) => new RssSampler(node.proc.pid));
      let largest = 0;
      const live: Tab[] = [];
      for (let i = 0; i < LOGINS; i++) {
        const tab = await login(c.nodes[i % 2]!, user, live);
        expect(tab.ended).toBeUndefined();
        // Tabs closed by the server are dropped by the client too: the test holds only the open ones.
        for (let j = live.length - 1; j >= 0; j--) if (live[j]!.ended) live.splice(j, 1);
        if (i % 20 === 0) largest = Math.max(largest, counted(c.prefix, user.id));
      }
      for (const s of samplers) s.stop();
      const deadline = Date.now() + 10_000;
      while (open(live) > 2 && Date.now() < deadline) await Bun.sleep(20);
      const growth = samplers.map((s) => s.growth / (1024 * 1024));
      console.log(`seslimit attack: ${LOGINS} logins, sess:U largest ${largest}, RSS growth MiB ${growth.map((g) => g.toFixed(1)).join(" / ")}`);
      expect(largest).toBeLessThanOrEqual(2);
      expect(counted(c.prefix, user.id)).toBe(2);
      expect(open(live)).toBe(2);
      for (const g of growth) expect(g).toBeLessThan(40);
      c.tabs.push(...live);
    } finally {
      await c.stop();
    }
  }, 120_000);
});
