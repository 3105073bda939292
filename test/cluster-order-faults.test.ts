// Breaker tests (issue 14 item 7 under faults): two cluster nodes as real processes on a real
// redis-server, control connections on both pipelining shouts to one channel, webtalk.v2 browsers on
// both nodes. Each browser must see the channel's offsets rise by exactly one, and every shout answered
// [ok] must reach every browser once; checked with Redis paused (CLIENT PAUSE) in the middle.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { replayEpoch } from "./epochs.ts";
import { endCluster, OffsetPage, offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, useRedis, uniquePrefix, redisCliOn } from "./redis-server.ts";

const redis = useRedis();

const redisCli = (...args: string[]) => redisCliOn(redis, ...args);

describe.skipIf(!haveRedis)("cluster offsets under faults", () => {
  for (const pauseMs of [800, 3000]) {
    test(`Redis paused (CLIENT PAUSE ${pauseMs} ALL) in the middle of pipelined shouts: +1 steps, every [ok] shout on every browser`, async () => {
      const nodes = await spawnCluster(redis, uniquePrefix("pause"), 2);
      const ctls = [
        await ControlClient.connect(nodes[0]!.privatePort),
        await ControlClient.connect(nodes[1]!.privatePort),
      ];
      const pages: OffsetPage[] = [];
      try {
        const channel = await ctls[0]!.ok("[newchannel]");
        for (let i = 0; i < 4; i++) {
          const user: User = await newUser(ctls[0]!);
          await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
          pages.push(await OffsetPage.login(nodes[i % 2]!.publicUrl, user.token));
        }
        await Bun.sleep(200);
        const shouts = 1500;
        const sent = ctls.map((ctl, n) => {
          ctl.write(encodeFrames(Array.from({ length: shouts }, (_, i) => `[shout] ${channel}!s${n}-${i}`)));
          return ctl.replies.take(shouts, "the replies", 40_000);
        });
        await Bun.sleep(30);
        redisCli("CLIENT", "PAUSE", String(pauseMs), "ALL");
        const replies = await Promise.all(sent);
        const acked = replies.flatMap((list, n) => list.flatMap((r, i) => (r === "[ok] message sent" ? [`s${n}-${i}`] : [])));
        const errors = replies.flat().filter((r) => r !== "[ok] message sent");
        await Bun.sleep(1500);
        const report: Record<string, unknown> = { acked: acked.length, errors: errors.length, firstError: errors[0] };
        const problems: string[] = [];
        for (const [i, page] of pages.entries()) {
          const offsets = page.offsets.get(channel) ?? [];
          const texts = new Set(page.texts.get(channel) ?? []);
          const missing = acked.filter((t) => !texts.has(t));
          const steps = offsetSkips(offsets);
          report[`browser ${i} (node ${i % 2})`] = { received: offsets.length, notPlusOne: steps.slice(0, 4), missingAcked: missing.length };
          if (steps.length || missing.length) problems.push(`browser ${i}`);
        }
        for (const node of nodes) report[`node exit`] = node.proc.exitCode;
        console.log(JSON.stringify(report, null, 1));
        expect(problems).toEqual([]);
      } finally {
        await endCluster({ pages, ctls, nodes });
      }
    }, 60_000);
  }
});

describe.skipIf(!haveRedis)("a node killed mid-traffic", () => {
  test("v2 browsers of a node killed with kill -9 resume on another node: every source 1..N, once each, +1 steps", async () => {
    // A window that holds every message: pipelined, all 2,400 are numbered within milliseconds, before
    // the pages are back, and a smaller window would answer their resume with #gap and live only.
    const nodes = await spawnCluster(redis, uniquePrefix("kill"), 3, ["--replay-count", "4000"]);
    const ctls = [await ControlClient.connect(nodes[0]!.privatePort), await ControlClient.connect(nodes[1]!.privatePort)];
    const sessions: { user: User; pages: OffsetPage[]; epoch: string }[] = [];
    try {
      const channel = await ctls[0]!.ok("[newchannel]");
      for (let i = 0; i < 4; i++) {
        const user: User = await newUser(ctls[0]!);
        await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
        const page = new OffsetPage(await Browser.open(nodes[2]!.publicUrl, "webtalk.v2"));
        page.browser.send(user.token);
        const epoch = await replayEpoch(page.browser);
        sessions.push({ user, pages: [page], epoch });
      }
      await Bun.sleep(200);
      const ctlsCount = ctls.length;
      const count = 1200;
      const whisperIndexes = Array.from({ length: count }, (_, i) => i).filter((i) => i % 3 === 0);
      const expectedShouts = ctlsCount * (count - whisperIndexes.length);
      const expectedWhispers = (user: number) => ctlsCount * whisperIndexes.filter((i) => i % 4 === user).length;
      const sent = ctls.map((ctl, n) => {
        const frames = Array.from({ length: count }, (_, i) => (i % 3 === 0 ? `[whisper] ${sessions[i % 4]!.user.id}!w${n}-${i}` : `[shout] ${channel}!s${n}-${i}`));
        ctl.write(encodeFrames(frames));
        return ctl.replies.take(count, "the replies", 40_000);
      });
      await Bun.sleep(40);
      nodes[2]!.proc.kill("SIGKILL");
      // Each page comes back at once on node 0 or 1 with its positions, as /webtalk.js does.
      await Promise.all(
        sessions.map(async (s, i) => {
          const first = s.pages[0]!;
          await first.browser.closed;
          // Position 0 for a source not heard from yet (as the resume test does): asks for all of it.
          const positions = [String(channel), "u"].map((source) => `${source}:${first.offsets.get(source)?.at(-1) ?? 0}`).join(",");
          const page = new OffsetPage(await Browser.open(nodes[i % 2]!.publicUrl, "webtalk.v2"));
          page.browser.send(positions ? `${s.user.token}!${s.epoch}!${positions}` : s.user.token);
          s.pages.push(page);
        }),
      );
      const replies = (await Promise.all(sent)).flat();
      expect(replies.filter((r) => !r.startsWith("[ok] message"))).toEqual([]);
      await Bun.sleep(2000);
      const report: Record<string, unknown> = {};
      const problems: string[] = [];
      for (const [i, s] of sessions.entries()) {
        for (const source of [String(channel), "u"]) {
          const all = s.pages.flatMap((p) => p.offsets.get(source) ?? []);
          const steps = offsetSkips(all);
          const firstOffset = all[0];
          report[`user ${i} ${source}`] = { received: all.length, first: firstOffset, last: all.at(-1), notPlusOne: steps.slice(0, 4), before: s.pages[0]!.offsets.get(source)?.length ?? 0 };
          // Every offset 1..N once: the last one is the number the source was sent (nothing silently missing).
          const sentToSource = source === "u" ? expectedWhispers(i) : expectedShouts;
          if (steps.length || firstOffset !== 1 || all.at(-1) !== sentToSource) problems.push(`user ${i} ${source}`);
        }
      }
      console.log(JSON.stringify(report));
      expect(problems).toEqual([]);
    } finally {
      await endCluster({ pages: sessions.flatMap((s) => s.pages), ctls, nodes });
    }
  }, 60_000);
});

describe.skipIf(!haveRedis)("membership changes interleaved with shouts", () => {
  test("[join]/[leave]/[killchannel] from other connections: untouched members see +1 steps; toggled ones never a repeat or a step back", async () => {
    const nodes = await spawnCluster(redis, uniquePrefix("members"), 2);
    const ctls = [await ControlClient.connect(nodes[0]!.privatePort), await ControlClient.connect(nodes[1]!.privatePort), await ControlClient.connect(nodes[1]!.privatePort)];
    const pages: OffsetPage[] = [];
    try {
      const channel = await ctls[0]!.ok("[newchannel]");
      const doomed = await ctls[0]!.ok("[newchannel]");
      const users: User[] = [];
      for (let i = 0; i < 4; i++) {
        const user: User = await newUser(ctls[0]!);
        await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
        await ctls[0]!.ok(`[join] ${doomed}!${user.id}`);
        users.push(user);
        pages.push(await OffsetPage.login(nodes[i % 2]!.publicUrl, user.token));
      }
      await Bun.sleep(200);
      const shouts = 1500;
      const a = ctls[0]!;
      a.write(encodeFrames(Array.from({ length: shouts }, (_, i) => (i % 5 ? `[shout] ${channel}!s${i}` : `[shout] ${doomed}!d${i}`))));
      const toggles: string[] = [];
      for (let i = 0; i < 60; i++) for (const u of [users[2]!, users[3]!]) toggles.push(`[leave] ${channel}!${u.id}`, `[join] ${channel}!${u.id}`);
      ctls[1]!.write(encodeFrames(toggles));
      await Bun.sleep(20);
      ctls[2]!.write(encodeFrames([`[killchannel] ${doomed}`]));
      const replies = await a.replies.take(shouts, "the shouts", 40_000);
      await ctls[1]!.replies.take(toggles.length, "the toggles", 40_000);
      expect(await ctls[2]!.replies.next()).toBe("[ok] channel killed");
      const acked = replies.filter((r) => r === "[ok] message sent").length;
      await Bun.sleep(1000);
      const report: Record<string, unknown> = { acked };
      const problems: string[] = [];
      for (const [i, page] of pages.entries()) {
        const offsets = page.offsets.get(channel) ?? [];
        const steps = offsetSkips(offsets);
        const backwards = steps.filter((s) => Number(s.split("->")[1]) <= Number(s.split("->")[0]));
        const d = page.offsets.get(doomed) ?? [];
        report[`user ${i}`] = { received: offsets.length, notPlusOne: steps.length, backwards: backwards.slice(0, 4), doomed: d.length, doomedSteps: offsetSkips(d).slice(0, 3) };
        if (i < 2 && steps.length) problems.push(`untouched user ${i}: ${steps.slice(0, 4).join(" ")}`);
        if (backwards.length || offsetSkips(d).length) problems.push(`user ${i}: back ${backwards.slice(0, 4).join(" ")} doomed ${offsetSkips(d).slice(0, 3).join(" ")}`);
      }
      console.log(JSON.stringify(report));
      expect(problems).toEqual([]);
    } finally {
      await endCluster({ pages, ctls, nodes });
    }
  }, 60_000);
});
