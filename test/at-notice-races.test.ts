// Outside review (s15): the #at promise under load. From login on, every source's offsets go up by
// exactly one from the #at offset: no repeat, no late, no skip.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer } from "./helpers.ts";

/** Reads a v2 page's lines until `last` arrives on `source`; checks each source's offsets from #at. */
async function checkRun(page: Browser, lastText: string): Promise<string[]> {
  const problems: string[] = [];
  const pos = new Map<string, number>();
  let sawAt = false;
  const lines: string[] = [];
  for (;;) {
    const line = await page.messages.next(`line until ${lastText}`, 15_000);
    lines.push(line);
    if (line.startsWith("#at ")) {
      for (const item of line.slice(4).split(",")) {
        const [s, o] = item.split(":") as [string, string];
        if (!sawAt && pos.has(s) && pos.get(s)! > Number(o)) problems.push(`#at ${s}:${o} below seen ${pos.get(s)}`);
        if (sawAt && pos.has(s)) problems.push(`second #at for ${s}`);
        pos.set(s, Number(o));
      }
      sawAt = true;
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^(u|\d+):(\d+)!(.*)$/.exec(line);
    if (!m) { problems.push(`odd line ${line}`); continue; }
    const [, s, o, text] = m as unknown as [string, string, string, string];
    const off = Number(o);
    if (sawAt) {
      const had = pos.get(s);
      if (had === undefined) problems.push(`${s}:${off} with no #at for ${s}`);
      else if (off !== had + 1) problems.push(`${s}: ${had} then ${off}`);
    }
    pos.set(s, off);
    if (text === lastText) {
      if (problems.length > 0 && process.env.ATBREAK_DEBUG) console.log(lines.join("\n"));
      return problems;
    }
  }
}

describe("one node in memory: shouts pipelined while pages log in", () => {
  let server: Webtalk;
  let ctl: ControlClient;
  let sender: ControlClient;
  beforeAll(async () => {
    server = await startTestServer({ sessions: 3 });
    ctl = await ControlClient.connect(server.private.port);
    sender = await ControlClient.connect(server.private.port);
  });
  afterAll(async () => {
    ctl.close();
    sender.close();
    await server.stop();
  });

  test("logins racing a stream of shouts and whispers: offsets go up by one from #at", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const problems: string[] = [];
    for (let round = 0; round < 20; round++) {
      // A burst of pipelined shouts and whispers, with the login landing in the middle of it.
      const burst: string[] = [];
      for (let i = 0; i < 200; i++) burst.push(i % 3 === 0 ? `[whisper] ${user.id}!w${round}-${i}` : `[shout] ${channel}!s${round}-${i}`);
      sender.write(encodeFrames(burst.slice(0, 100)));
      const page = await Browser.open(server.publicUrl, "webtalk.v2", { atNotices: true });
      page.send(user.token);
      sender.write(encodeFrames(burst.slice(100)));
      await sender.replies.take(200, "burst replies", 15_000);
      await ctl.ok(`[shout] ${channel}!end${round}`);
      for (const p of await checkRun(page, `end${round}`)) problems.push(`round ${round}: ${p}`);
      page.close();
      await page.closed;
    }
    expect(problems).toEqual([]);
  });

  test("[join]/[leave] racing a login: the channel's offsets go up by one from its #at", async () => {
    const user = await newUser(ctl);
    const problems: string[] = [];
    for (let round = 0; round < 20; round++) {
      const channel = await ctl.ok("[newchannel]");
      await ctl.ok(`[shout] ${channel}!before`);
      const burst: string[] = [];
      for (let i = 0; i < 50; i++) burst.push(`[shout] ${channel}!s${i}`);
      sender.write(encodeFrames(burst.slice(0, 25)));
      const page = await Browser.open(server.publicUrl, "webtalk.v2", { atNotices: true });
      page.send(user.token);
      sender.write(encodeFrames([`[join] ${channel}!${user.id}`, ...burst.slice(25)]));
      await sender.replies.take(51, "burst replies", 15_000);
      await ctl.ok(`[shout] ${channel}!end${round}`);
      for (const p of await checkRun(page, `end${round}`)) problems.push(`round ${round}: ${p}`);
      page.close();
      await page.closed;
    }
    expect(problems).toEqual([]);
  });
});

import { endCluster, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import type { Spawned } from "./process.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("two --redis nodes: [join] and whispers from node B racing logins on node A", () => {
  test("join sent on B while the page logs in on A, shouts pipelined from B: offsets go up by one from #at; v1 page never sees #at", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("atbreak"), 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    try {
      const [a] = nodes as [Spawned, Spawned];
      const [ca, cb] = ctls as [ControlClient, ControlClient];
      const user = await newUser(ca);
      const problems: string[] = [];
      for (let round = 0; round < 15; round++) {
        const channel = await ca.ok("[newchannel]");
        await cb.ok(`[shout] ${channel}!before`);
        const burst: string[] = [];
        for (let i = 0; i < 40; i++) burst.push(i % 4 === 0 ? `[whisper] ${user.id}!w${i}` : `[shout] ${channel}!s${i}`);
        cb.write(encodeFrames(burst.slice(0, 20)));
        const page = await Browser.open(a.publicUrl, "webtalk.v2", { atNotices: true });
        page.send(user.token);
        cb.write(encodeFrames([`[join] ${channel}!${user.id}`, ...burst.slice(20)]));
        await cb.replies.take(41, "burst replies", 15_000);
        await cb.ok(`[shout] ${channel}!end${round}`);
        await cb.ok(`[whisper] ${user.id}!wend${round}`);
        for (const p of await checkRun(page, `wend${round}`)) problems.push(`round ${round}: ${p}`);
        page.close();
        await page.closed;
        await cb.ok(`[leave] ${channel}!${user.id}`);
      }
      // v1: byte-identical, never a #at.
      const v1 = await Browser.open(a.publicUrl, undefined, { atNotices: true });
      v1.send(user.token);
      const ch = await ca.ok("[newchannel]");
      await cb.ok(`[join] ${ch}!${user.id}`);
      await cb.ok(`[shout] ${ch}!v1 shout`);
      await cb.ok(`[whisper] ${user.id}!v1end`);
      const seen: string[] = [];
      for (let m = await v1.messages.next("v1 end"); m !== "v1end"; m = await v1.messages.next("v1 end")) seen.push(m);
      expect(seen.filter((m) => m.startsWith("#"))).toEqual([]);
      v1.close();
      expect(problems).toEqual([]);
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 120_000);
});


/** Join racing a login, page cut before hearing from the channel, resume with what it was told. */
async function joinRaceLoss(a: { publicUrl: string }, ca: ControlClient, cb: ControlClient, joinFirst = false, otherUrl?: string): Promise<string[]> {
  const user = await newUser(ca);
  const lost: string[] = [];
  // ATBREAK_OTHER=url: a second v2 tab of the user kept online elsewhere (isolates the offline case).
  const other = process.env.ATBREAK_OTHER_B && otherUrl ? await Browser.open(otherUrl, "webtalk.v2") : undefined;
  other?.send(user.token);
  for (let round = 0; round < 15; round++) {
    const channel = await ca.ok("[newchannel]");
    await cb.ok(`[shout] ${channel}!before`);
    if (joinFirst) await cb.ok(`[join] ${channel}!${user.id}`);
    const whispers = Array.from({ length: Number(process.env.ATBREAK_W ?? 20) }, (_, i) => `[whisper] ${user.id}!w${i}`);
    cb.write(encodeFrames(whispers.slice(0, whispers.length / 2)));
    const page = await Browser.open(a.publicUrl, "webtalk.v2", { atNotices: true });
    page.send(user.token);
    cb.write(encodeFrames([...(joinFirst ? [] : [`[join] ${channel}!${user.id}`]), ...whispers.slice(whispers.length / 2)]));
    await cb.replies.take(whispers.length + (joinFirst ? 0 : 1), "replies", 15_000);
    await cb.ok(`[whisper] ${user.id}!sync${round}`);
    // Everything the page was told: its positions, as /webtalk.js keeps them.
    let epoch = "";
    const positions = new Map<string, number>();
    // The login's #at may come after held whispers (sync among them): read until both came.
    let sawAt = false;
    let sawSync = false;
    while (!sawAt || !sawSync) {
      const line = await page.messages.next(`sync${round} and #at`, 15_000);
      if (line.startsWith("#epoch ")) epoch = line.slice(7);
      else if (line.startsWith("#at ")) {
        sawAt = true;
        for (const item of line.slice(4).split(",")) { const [s, o] = item.split(":") as [string, string]; positions.set(s, Number(o)); }
      } else if (!line.startsWith("#")) { const m = /^(u|\d+):(\d+)!(.*)$/.exec(line)!; positions.set(m[1]!, Number(m[2])); if (m[3] === `sync${round}`) sawSync = true; }
    }

    // Give a join's #at that trails the sync whisper a moment (not a timing assertion: it only helps the page).
    for (const line of await page.messages.settled(300)) {
      if (line.startsWith("#at ")) for (const item of line.slice(4).split(",")) { const [s, o] = item.split(":") as [string, string]; positions.set(s, Number(o)); }
      else { const m = /^(u|\d+):(\d+)!/.exec(line); if (m) positions.set(m[1]!, Number(m[2])); }
    }
    page.close();
    await page.closed;
    // Another tab-less moment: the whisper is held, the shout goes to the replay window.
    await (process.env.ATBREAK_AWAY_A ? ca : cb).ok(`[shout] ${channel}!away${round}`);
    const list = [...positions].map(([s, o]) => `${s}:${o}`).join(",");
    const back = await Browser.open(a.publicUrl, "webtalk.v2", { atNotices: true });
    back.send(`${user.token}!${epoch}!${list}`);
    // Order is promised per source only: end the channel with its own marker and read until both came.
    await cb.ok(`[whisper] ${user.id}!back${round}`);
    await cb.ok(`[shout] ${channel}!chend${round}`);
    const seen: string[] = [];
    let gotBack = false;
    let gotEnd = false;
    while (!gotBack || !gotEnd) {
      const line = await back.messages.next(`back${round} and chend${round}`, 5_000).catch(() => undefined);
      if (line === undefined) {
        lost.push(`round ${round}: told ${list}; after resume, within 5 s, saw only ${seen.join(" | ")}`);
        break;
      }
      seen.push(line);
      if (line.endsWith(`!back${round}`)) gotBack = true;
      if (line.endsWith(`!chend${round}`)) gotEnd = true;
    }
    if (gotEnd && gotBack && !seen.some((l) => l.endsWith(`!away${round}`))) lost.push(`round ${round}: told ${list}; after resume saw ${seen.join(" | ")}`);
    back.close();
    await back.closed;
    await cb.ok(`[leave] ${channel}!${user.id}`);
  }
  other?.close();
  return lost;
}

describe("one node in memory: the same join race, cut and resume", () => {
  test("join racing a login, cut before hearing from the channel, resume with every position told: the shout sent while away arrives", async () => {
    const server = await startTestServer();
    const ca = await ControlClient.connect(server.private.port);
    const cb = await ControlClient.connect(server.private.port);
    try {
      expect(await joinRaceLoss(server, ca, cb)).toEqual([]);
    } finally {
      ca.close();
      cb.close();
      await server.stop();
    }
  }, 120_000);
});
describe.skipIf(!haveRedis)("two --redis nodes: the loss a missing #at causes", () => {
  test("join on B racing a login on A, page cut before hearing from the channel, resumes with every position it was told: the shout sent while away arrives", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("atloss"), 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    try {
      const [a] = nodes as [Spawned, Spawned];
      const [ca, cb] = ctls as [ControlClient, ControlClient];
      expect(await joinRaceLoss(a, ca, cb)).toEqual([]);
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 120_000);

  test("control: join on B done before the login on A, page cut before hearing from the channel, resume: the shout sent while away arrives", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("atloss0"), 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    try {
      const [a] = nodes as [Spawned, Spawned];
      const [ca, cb] = ctls as [ControlClient, ControlClient];
      expect(await joinRaceLoss(a, ca, cb, true, nodes[1]!.publicUrl)).toEqual([]);
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 120_000);
});

import { eventsUrl, SseClient } from "./sse-client.ts";

describe("one node in memory: a user in 1,200 channels", () => {
  test("SSE at event's id stays within 15,872 bytes (with + when cut short); WebSocket #at names every channel", async () => {
    const server = await startTestServer();
    const ctl = await ControlClient.connect(server.private.port);
    try {
      const user = await newUser(ctl);
      const made: string[] = [];
      for (let done = 0; done < 1200; done += 200) {
        ctl.write(encodeFrames(Array.from({ length: 200 }, () => "[newchannel]")));
        for (const r of await ctl.replies.take(200, "channels", 15_000)) made.push(r.slice(5));
      }
      ctl.write(encodeFrames(made.map((c) => `[join] ${c}!${user.id}`)));
      await ctl.replies.take(made.length, "joins", 15_000);
      const stream = await SseClient.open(eventsUrl(server.publicUrl, user.token));
      let event = await stream.next("at", true);
      while (event.type !== "at") event = await stream.next("at", true);
      const id = event.id;
      const page = await Browser.open(server.publicUrl, "webtalk.v2", { atNotices: true });
      page.send(user.token);
      let line = await page.messages.next("#at");
      while (!line.startsWith("#at ")) line = await page.messages.next("#at");
      const named = line.slice(4).split(",").length;
      stream.cut();
      page.close();
      expect({ idBytes: new TextEncoder().encode(id).length <= 15_872, plus: id.includes("!+,"), named }).toEqual({ idBytes: true, plus: true, named: 1202 });
    } finally {
      ctl.close();
      await server.stop();
    }
  }, 60_000);
});
