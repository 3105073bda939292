// --sessions 3 on two nodes (real processes, one redis-server): a tab that gives up during its login on
// one node while the user's tab on the other node closes (or logs in) at the same moment. Every user
// that ends with no tab open must have had exactly one [online] and one [offline]; a user with a tab
// open must have had its [online] and be reported online.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, loggedIn, newUser } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("--sessions 3 presence events across two nodes with logins given up", () => {
  test("a tab leaving during its login while the user's other-node tab closes: [online]/[offline] still pair up", async () => {
    const nodes = await spawnCluster(redis, uniquePrefix("prace"), 2, ["--sessions", "3"]);
    const [c0, c1] = [await ControlClient.connect(nodes[0]!.privatePort), await ControlClient.connect(nodes[1]!.privatePort)];
    const listen = await ControlClient.connect(nodes[0]!.privatePort);
    const events: string[] = [];
    expect(await listen.call("[listen]")).toBe("[ok] listening");
    void (async () => {
      for (;;) events.push(await listen.replies.next("", 600_000));
    })().catch(() => undefined);
    const bad: string[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        // Variant 1: A (node 0) live and closing; B (node 1) logging in and leaving mid-login.
        const [a, user] = await loggedIn({ publicUrl: nodes[0]!.publicUrl }, c0);
        const b = await Browser.open(nodes[1]!.publicUrl);
        b.send(user.token);
        await Bun.sleep(i % 6);
        a.close();
        await Bun.sleep(i % 4);
        b.close();
        await Promise.all([a.closed, b.closed]);
        // Variant 2: C (node 0) logging in and leaving mid-login; D (node 1) logging in and staying.
        const other = await newUser(c0);
        const c = await Browser.open(nodes[0]!.publicUrl);
        const d = await Browser.open(nodes[1]!.publicUrl);
        c.send(other.token);
        await Bun.sleep(i % 3);
        d.send(other.token);
        await Bun.sleep(i % 5);
        c.close();
        await c.closed;
        await Bun.sleep(300);
        const onlineNow = await c1.call(`[online] ${other.id}`);
        const dOpen = d.ws.readyState === WebSocket.OPEN;
        await Bun.sleep(200);
        const about = (id: number) => events.filter((e) => e === `[online] ${id}` || e === `[offline] ${id}`);
        // A tab admitted and closed before the other node's login is a real offline spell: events must
        // alternate, start with [online], and end as the user is.
        const paired = (list: string[], id: number, open: boolean) =>
          list.length > 0 && list.every((e, k) => e === (k % 2 === 0 ? `[online] ${id}` : `[offline] ${id}`)) && list.length % 2 === (open ? 1 : 0);
        const first = about(user.id);
        if (!paired(first, user.id, false)) bad.push(`round ${i} closed user: ${first.join(" ") || "no events"} ([online] now ${await c0.call(`[online] ${user.id}`)})`);
        const second = about(other.id);
        if (dOpen && (!paired(second, other.id, true) || onlineNow !== "[ok] 1"))
          bad.push(`round ${i} user with a tab open: ${second.join(" ") || "no events"} ([online] answered ${onlineNow})`);
        d.close();
        await d.closed;
      }
    } finally {
      for (const c of [c0, c1, listen]) c.close();
      for (const n of nodes) await n.stop();
    }
    expect(bad).toEqual([]);
  }, 120_000);
});
