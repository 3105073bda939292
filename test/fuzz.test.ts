// Socket-level fuzz: hostile clients hammer both ports of a real server process for a few seconds while a
// well-behaved backend and browser check every reply and every message. Afterwards the server still answers,
// holds no leftover connections, and its memory stayed under a fixed bound.
// Replay a failure's inputs with FUZZ_SEED=<seed> (printed on failure); run longer with FUZZ_MS=<ms>.

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { encodeFrames } from "../src/protocol/frame.ts";
import { fuzzControlOnce } from "./fuzz/control.ts";
import { fuzzPublicOnce } from "./fuzz/public.ts";
import { createGuard, Tally, type FuzzTarget } from "./fuzz/target.ts";
import { Browser, ControlClient, expectNothingMore, loggedIn, newUser, type User } from "./helpers.ts";
import { MAIN, spawnServer, type Spawned } from "./process.ts";
import { chooseSeed, createRandom, type Random } from "./random.ts";

const SEED = chooseSeed(process.env.FUZZ_SEED);
const FUZZ_MS = Number(process.env.FUZZ_MS ?? 6_000);
/** Generous but finite: the server idles near 50 MB; a leak or an unbounded buffer would cross this. */
const RSS_LIMIT_MB = 300;
const CONTROL_CLIENTS = 6;
const PUBLIC_CLIENTS = 6;
/** Users and channels made and killed first, so the well-behaved pair gets 4-digit IDs that noise rarely spells. */
const BURNED = 1000;
const FUZZ_USERS = 40;
const FUZZ_CHANNELS = 10;

test(`hostile traffic on both ports never disturbs a well-behaved backend and browser (seed ${SEED})`, async () => {
  const r = createRandom(SEED);
  const server = await spawnServer([
    "bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--login-timeout", "1", "--queue", "100",
  ]);
  const tally = new Tally();
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const setup = await prepare(ctl, server, r, tally);
    const [browser] = await loggedIn(server, ctl, setup.good);
    const [browserV2, epoch] = await loggedInV2(server, ctl, setup.goodV2);
    setup.target.epoch = epoch;
    const rssBefore = rssMb(server);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(server))), 100);

    const until = Date.now() + FUZZ_MS;
    const hostile = async (once: typeof fuzzControlOnce, random: Random) => {
      while (Date.now() < until) await once(setup.target, random, tally);
    };
    let good: { rounds: number; messages: number };
    try {
      [good] = await Promise.all([
        wellBehaved(ctl, browser, browserV2, setup, until),
        ...Array.from({ length: CONTROL_CLIENTS }, () => hostile(fuzzControlOnce, r.fork())),
        ...Array.from({ length: PUBLIC_CLIENTS }, () => hostile(fuzzPublicOnce, r.fork())),
      ]);
    } finally {
      clearInterval(sampler);
    }

    expect(server.proc.exitCode).toBeNull();
    const fresh = await ControlClient.connect(server.privatePort);
    expect(await fresh.call("[ping]")).toBe("[ok] pong");
    await expectNothingMore(ctl, browser, setup.good.id);
    await ctl.ok(`[whisper] ${setup.goodV2.id}!last`);
    expect(await browserV2.messages.next("the v2 browser's last whisper")).toBe(`u:${good.rounds * 20 + 2}!last`);
    // Every hostile connection has gone (pending logins time out after 1 s): only the good ones remain.
    const settled = await statsUntil(fresh, (s) => s.online === 2 && s.control_connections === 2, 5_000);
    const rssAfter = rssMb(server);
    console.log(
      `fuzz seed ${SEED}: ${FUZZ_MS} ms, ${tally.connections} hostile connections, ${tally.replies} replies checked, ` +
        `${tally.guarded} inputs skipped by the guard; well-behaved ${good.rounds} rounds, ${good.messages} messages; ` +
        `rss ${rssBefore} MB before, ${rssPeak} MB peak, ${rssAfter} MB after (limit ${RSS_LIMIT_MB} MB), ` +
        `holding users=${settled.users} channels=${settled.channels} held=${settled.held}`,
    );
    console.log(`fuzz scenarios: ${[...tally.scenarios].map(([name, n]) => `${name} ${n}`).join(", ")}`);
    expect(tally.violations).toEqual([]);
    expect(settled).toMatchObject({ online: 2, control_connections: 2 });
    expect(rssPeak).toBeLessThan(RSS_LIMIT_MB);
    browser.close();
    browserV2.close();
    fresh.close();
    ctl.close();
  } catch (error) {
    const exit = server.proc.exitCode === null ? "still running" : `exited with ${server.proc.exitCode}`;
    console.error(
      `fuzz FAILED with seed ${SEED} (server ${exit}); replay with FUZZ_SEED=${SEED} bun test test/fuzz.test.ts\n` +
        `violations: ${tally.violations.join("\n  ") || "none"}\nserver output (end): ${server.output().slice(-2000)}`,
    );
    throw error;
  } finally {
    expect(await server.stop()).toBe(0);
  }
}, 30_000 + FUZZ_MS);

interface Setup {
  target: FuzzTarget;
  /** The well-behaved users: one with a plain browser, one with a webtalk.v2 browser. */
  good: User;
  goodV2: User;
  channel: string;
  key: string;
  value: string;
}

/** Burns IDs, makes the well-behaved user and channel, and a pool of users and channels for the fuzz. */
async function prepare(ctl: ControlClient, server: Spawned, r: Random, tally: Tally): Promise<Setup> {
  const burned = await pipeline(ctl, Array.from({ length: BURNED }, () => "[newuser]"));
  const deadUsers = burned.map((reply) => Number(reply.slice(5).split("!")[0]));
  const deadChannels = await pipeline(ctl, Array.from({ length: BURNED }, () => "[newchannel]"));
  await pipeline(ctl, [...deadUsers.map((id) => `[killuser] ${id}`), ...deadChannels.map((id) => `[killchannel] ${id.slice(5)}`)]);

  const good = await newUser(ctl);
  const goodV2 = await newUser(ctl);
  const channel = await ctl.ok("[newchannel]");
  // Off the global channel, which hostile backends may shout to; onto their own, which they cannot name.
  for (const user of [good, goodV2]) {
    await ctl.ok(`[leave] 1!${user.id}`);
    await ctl.ok(`[join] ${channel}!${user.id}`);
  }
  const key = `good-${r.int(1e9)}-${r.int(1e9)}`;
  const value = `value with ! and ünïcode ${r.int(1e9)}`;
  await ctl.ok(`[store] ${key}!${value}`);

  const fuzzUsers = (await pipeline(ctl, Array.from({ length: FUZZ_USERS }, () => "[newuser]"))).map((reply) => reply.slice(5));
  const users = fuzzUsers.map((token) => Number(token.split("!")[0]));
  const channels = (await pipeline(ctl, Array.from({ length: FUZZ_CHANNELS }, () => "[newchannel]"))).map((reply) => Number(reply.slice(5)));
  await pipeline(ctl, users.map((user) => `[join] ${r.pick(channels)}!${user}`));

  const url = new URL(server.publicUrl);
  const target: FuzzTarget = {
    privatePort: server.privatePort,
    publicPort: Number(url.port),
    publicUrl: server.publicUrl,
    path: url.pathname,
    users,
    tokens: fuzzUsers,
    deadUsers,
    channels,
    goodUsers: [good.id, goodV2.id],
    epoch: "", // learnt from the well-behaved v2 browser's login
    guard: createGuard([good.id, goodV2.id, Number(channel)], tally),
  };
  return { target, good, goodV2, channel, key, value };
}

/**
 * The well-behaved backend and browsers: batches of whispers and shouts numbered in sequence, with
 * presence checks; every reply must be exact and each browser must get every message once, in order,
 * nothing else. The v2 browser's offsets must go up by exactly one per message of each source.
 */
async function wellBehaved(ctl: ControlClient, browser: Browser, browserV2: Browser, setup: Setup, until: number) {
  const { good, goodV2, channel, key, value } = setup;
  let seq = 0;
  let rounds = 0;
  while (Date.now() < until) {
    const payloads = ["[ping]", `[online] ${good.id}`, `[online] ${goodV2.id}`, `[count] ${channel}`, `[retrieve] ${key}`];
    const replies = ["[ok] pong", "[ok] 1", "[ok] 1", "[ok] 2!2", `[ok] ${value}`];
    const messages: string[] = [];
    const messagesV2: string[] = [];
    for (let i = 0; i < 20; i++) {
      seq++;
      payloads.push(`[whisper] ${good.id}!w${seq}`, `[shout] ${channel}!s${seq}`, `[whisper] ${goodV2.id}!v${seq}`);
      replies.push("[ok] message sent", "[ok] message sent", "[ok] message sent");
      messages.push(`w${seq}`, `s${seq}`);
      // The login marker was the v2 user's first whisper (u:1); no shout reached the channel before.
      messagesV2.push(`${channel}:${seq}!s${seq}`, `u:${seq + 1}!v${seq}`);
    }
    ctl.write(encodeFrames(payloads));
    expect(await ctl.replies.take(payloads.length, `well-behaved replies, round ${rounds}`)).toEqual(replies);
    expect(await browser.messages.take(messages.length, `well-behaved messages, round ${rounds}`)).toEqual(messages);
    expect(await browserV2.messages.take(messagesV2.length, `well-behaved v2 messages, round ${rounds}`)).toEqual(messagesV2);
    rounds++;
  }
  return { rounds, messages: 4 * seq };
}

/** A webtalk.v2 browser logged in (`#epoch`, then a marker whispered while it was offline, as `u:1`), and the epoch. */
async function loggedInV2(server: Spawned, ctl: ControlClient, user: User): Promise<[Browser, string]> {
  expect(await ctl.call(`[whisper] ${user.id}!ready`)).toBe("[ok] message queued");
  const browser = await Browser.open(server.publicUrl, "webtalk.v2");
  browser.send(user.token);
  const notice = await browser.messages.next("the v2 epoch notice");
  expect(notice).toStartWith("#epoch ");
  expect(await browser.messages.next("the v2 login marker")).toBe("u:1!ready");
  return [browser, notice.slice("#epoch ".length)];
}

/** Sends payloads in one write and returns their replies, failing on any `[error]`. */
async function pipeline(ctl: ControlClient, payloads: string[]): Promise<string[]> {
  ctl.write(encodeFrames(payloads));
  const replies = await ctl.replies.take(payloads.length, "setup replies");
  const bad = replies.find((reply) => !reply.startsWith("[ok] "));
  if (bad) throw new Error(`setup answered ${bad}`);
  return replies;
}

/** Asks `[stats]` back to back (no sleeping) until `done` holds or `ms` pass; returns the last stats. */
async function statsUntil(ctl: ControlClient, done: (s: Record<string, number>) => boolean, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const reply = await ctl.ok("[stats]");
    const stats = Object.fromEntries(reply.split(" ").map((kv) => [kv.split("=")[0]!, Number(kv.split("=")[1])]));
    if (done(stats) || Date.now() > deadline) return stats;
  }
}

function rssMb(server: Spawned): number {
  const status = readFileSync(`/proc/${server.proc.pid}/status`, "utf8");
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN) / 1024);
}
