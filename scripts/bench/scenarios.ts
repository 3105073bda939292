// The scenarios, each against one running server speaking the webtalk protocol. Every loop is bounded
// in count and in time; every figure comes with the server's CPU from /proc.

import { wallUs } from "./browsers.ts";
import { ControlConnection, frames } from "./control.ts";
import { Histogram } from "./histogram.ts";
import { cpuBetween, sampleMany, sampleProc, type ProcSample } from "./proc.ts";
import type { Workers } from "./workers.ts";

/** A server under test, however it was started. */
export interface Target {
  name: string;
  pid: number;
  publicUrl: string;
  /** Several nodes of one cluster: browsers are spread over these, and every PID's CPU counts. */
  publicUrls?: string[];
  pids?: number[];
  /** A WebSocket subprotocol for the browsers (webtalk.v2). */
  protocol?: string;
  privateHost: string;
  privatePort: number;
}

/** One server with browsers logged in, ready for scenarios. */
export interface Session {
  target: Target;
  ctl: ControlConnection;
  workers: Workers;
  /** IDs of the logged-in users. */
  users: number[];
  /** The load generator's own processes (workers and this one), for its CPU. */
  clientPids: number[];
}

export type Figures = Record<string, number>;

/** The server's CPU and memory: one process, or every node of a cluster added up. */
export function sampleServer(target: Target): ProcSample {
  return target.pids ? sampleMany(target.pids) : sampleProc(target.pid);
}

const GLOBAL_CHANNEL = 1;
/** A phase that makes no progress for this long is over: what has not arrived is lost. */
const STALL_MS = 5_000;
let nextSeq = 1;
let nextProbe = 1;

/** Reserves `count` shout sequence numbers (one sequence for every scenario of the run) and returns the first. */
export function takeSeq(count: number): number {
  const first = nextSeq;
  nextSeq += count;
  return first;
}

/**
 * Creates `count` users, opens one browser for each and logs it in. Logins per second run from the
 * first connect until every browser has its handshake done and its login sent (at most a few hundred
 * logins are then still in the server's queue). Then a shout must reach every browser (a login has no
 * reply in the protocol) before the session is ready. RSS per connection counts the server's growth
 * from the users' creation to the browsers logged in; RSS per user, from before the users existed.
 */
export async function openSession(
  target: Target,
  workers: Workers,
  count: number,
  concurrency: number,
): Promise<{ session: Session; figures: Figures }> {
  const ctl = await ControlConnection.open(target.privateHost, target.privatePort);
  const before = sampleServer(target);
  const users: number[] = [];
  const tokens: string[] = [];
  for (let done = 0; done < count; done += 5000) {
    const replies = await ctl.callMany(Array.from({ length: Math.min(5000, count - done) }, () => "[newuser]"));
    for (const reply of replies) {
      if (!reply.startsWith("[ok] ")) throw new Error(`[newuser] answered ${reply}`);
      tokens.push(reply.slice(5));
      users.push(Number(reply.slice(5, reply.indexOf("!"))));
    }
  }
  const start = sampleServer(target);
  const urls = target.publicUrls ?? [target.publicUrl];
  const parts = await Promise.all(
    urls.map((url, i) => workers.connect(url, tokens.filter((_, j) => j % urls.length === i), concurrency, target.protocol)),
  );
  const opened = parts.reduce((sum, p) => sum + p.opened, 0);
  const failed = parts.reduce((sum, p) => sum + p.failed, 0);
  const connected = sampleServer(target);
  if (failed > 0) throw new Error(`${failed} of ${count} browsers could not connect to ${target.name}`);
  await untilAllProbed(ctl, workers, opened, 30_000 + count * 2);
  // Let the allocator and the collector settle before reading memory.
  await Bun.sleep(500);
  const settled = sampleServer(target);
  const session: Session = { target, ctl, workers, users, clientPids: [...workers.pids, process.pid] };
  return {
    session,
    figures: {
      browsers: opened,
      loginsPerSec: opened / ((connected.at - start.at) / 1000),
      cpuUsPerLogin: cpuBetween(start, connected).us / opened,
      // A logged-in browser's cost, from after its user existed; the user's own cost is apart.
      rssBytesPerConn: (settled.rssBytes - start.rssBytes) / opened,
      rssBytesPerUser: (start.rssBytes - before.rssBytes) / opened,
      rssBytes: settled.rssBytes,
    },
  };
}

export async function closeSession(session: Session): Promise<void> {
  await session.workers.closeBrowsers();
  session.ctl.close();
}

/**
 * Shouts pipelined as fast as the browsers take them: at most `windowDeliveries` deliveries are in
 * flight (sent but not yet read by every browser), so no browser's queue grows without bound.
 */
export async function fanoutBurst(session: Session, deliveries: number, windowDeliveries: number): Promise<Figures> {
  const { ctl, workers, target } = session;
  const n = session.users.length;
  const shouts = Math.max(1, Math.round(deliveries / n));
  const window = Math.max(4, Math.ceil(windowDeliveries / n));
  const first = nextSeq;
  nextSeq += shouts;
  const repliesBefore = ctl.replies;
  await workers.expect(first);
  const s0 = sampleServer(target);
  const c0 = sampleMany(session.clientPids);
  let sent = 0;
  const deadline = performance.now() + 120_000;
  while (sent < shouts) {
    if (performance.now() > deadline) throw new Error(`fanout to ${target.name} did not finish in time`);
    const inFlight = first + sent - workers.progress().minNext;
    const unanswered = sent - (ctl.replies - repliesBefore);
    if (inFlight >= window || unanswered >= 10_000) {
      await workers.nextProgress(50);
      continue;
    }
    const batch = Math.min(window - inFlight, shouts - sent, 256);
    const now = wallUs();
    const payloads: string[] = new Array(batch);
    for (let i = 0; i < batch; i++) payloads[i] = `[shout] ${GLOBAL_CHANNEL}!${first + sent + i} ${now}`;
    ctl.write(frames(payloads));
    sent += batch;
  }
  await untilDelivered(workers, () => workers.progress().shouts, shouts * n);
  const s1 = sampleServer(target);
  const c1 = sampleMany(session.clientPids);
  await ctl.untilReplies(repliesBefore + shouts, 10_000);
  const { stats, latency } = await workers.collect();
  return {
    ...deliveryFigures(stats.shouts, shouts * n, s0, s1, c0, c1, latency),
    shouts,
    errors: ctl.errors,
    disorder: stats.disorder,
    peakRssBytes: s1.peakRssBytes,
  };
}

/** Shouts at a fixed rate, each written on its own: the latency a lone shout sees under steady load. */
export async function fanoutRate(session: Session, rate: number, seconds: number): Promise<Figures> {
  const { ctl, workers, target } = session;
  const n = session.users.length;
  const shouts = Math.max(1, Math.round(rate * seconds));
  const first = nextSeq;
  nextSeq += shouts;
  await workers.expect(first);
  const s0 = sampleServer(target);
  const c0 = sampleMany(session.clientPids);
  const start = performance.now();
  for (let i = 0; i < shouts; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0.5) await Bun.sleep(wait);
    ctl.write(frames([`[shout] ${GLOBAL_CHANNEL}!${first + i} ${wallUs()}`]));
  }
  await untilDelivered(workers, () => workers.progress().shouts, shouts * n);
  const s1 = sampleServer(target);
  const c1 = sampleMany(session.clientPids);
  const { stats, latency } = await workers.collect();
  return { ...deliveryFigures(stats.shouts, shouts * n, s0, s1, c0, c1, latency), shouts };
}

/** Whispers to random logged-in users, pipelined on one control connection. */
export async function whispers(session: Session, count: number): Promise<Figures> {
  const { ctl, workers, target, users } = session;
  await workers.expect(nextSeq);
  const repliesBefore = ctl.replies;
  const s0 = sampleServer(target);
  const c0 = sampleMany(session.clientPids);
  let random = 0x9e3779b9;
  let sent = 0;
  const deadline = performance.now() + 120_000;
  while (sent < count) {
    if (performance.now() > deadline) throw new Error(`whispers to ${target.name} did not finish in time`);
    if (sent - (ctl.replies - repliesBefore) >= 8_000) {
      await ctl.untilReplies(ctl.replies + 1_000, 30_000);
      continue;
    }
    const batch = Math.min(1_000, count - sent);
    const now = wallUs();
    const payloads: string[] = new Array(batch);
    for (let i = 0; i < batch; i++) {
      random = (Math.imul(random, 1664525) + 1013904223) >>> 0;
      payloads[i] = `[whisper] ${users[random % users.length]}!w${now}`;
    }
    ctl.write(frames(payloads));
    sent += batch;
  }
  await ctl.untilReplies(repliesBefore + count, 60_000);
  await untilDelivered(workers, () => workers.progress().whispers, count);
  const s1 = sampleServer(target);
  const c1 = sampleMany(session.clientPids);
  const { stats, latency } = await workers.collect();
  const figures = deliveryFigures(stats.whispers, count, s0, s1, c0, c1, latency);
  return { ...figures, perSec: count / ((s1.at - s0.at) / 1000), errors: ctl.errors };
}

/** `[store]` pipelined on one connection: the cost of the control path itself. */
export async function storesPipelined(session: Session, count: number): Promise<Figures> {
  const { ctl, target } = session;
  const batch = frames(Array.from({ length: 1000 }, (_, i) => `[store] key${i}!value${i}`));
  const repliesBefore = ctl.replies;
  const errorsBefore = ctl.errors;
  const s0 = sampleServer(target);
  const c0 = sampleMany(session.clientPids);
  let sent = 0;
  const deadline = performance.now() + 120_000;
  while (sent < count) {
    if (performance.now() > deadline) throw new Error(`stores to ${target.name} did not finish in time`);
    if (sent - (ctl.replies - repliesBefore) >= 20_000) {
      await ctl.untilReplies(ctl.replies + 2_000, 30_000);
      continue;
    }
    ctl.write(batch);
    sent += 1000;
  }
  await ctl.untilReplies(repliesBefore + sent, 60_000);
  const s1 = sampleServer(target);
  const c1 = sampleMany(session.clientPids);
  return commandFigures(sent, s0, s1, c0, c1, ctl.errors - errorsBefore);
}

/** One `[store]` at a time, each awaiting its reply: round trips, bound by waking the machine. */
export async function storesSerial(session: Session, count: number): Promise<Figures> {
  const { ctl, target } = session;
  const latency = new Histogram();
  const payload = frames(["[store] serial!value"]);
  const errorsBefore = ctl.errors;
  const s0 = sampleServer(target);
  const c0 = sampleMany(session.clientPids);
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    const want = ctl.replies + 1;
    ctl.write(payload);
    await ctl.untilReplies(want, 10_000);
    latency.record((performance.now() - t) * 1000);
  }
  const s1 = sampleServer(target);
  const c1 = sampleMany(session.clientPids);
  return {
    ...commandFigures(count, s0, s1, c0, c1, ctl.errors - errorsBefore),
    p50Us: latency.quantile(0.5),
    p99Us: latency.quantile(0.99),
  };
}

// Shouts `pK` until every browser has seen one sent after it logged in. A shout sent on its own
// costs the server a write per browser, so probes back off: 50 ms, 100 ms, 200 ms… apart.
async function untilAllProbed(ctl: ControlConnection, workers: Workers, expected: number, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (let wait = 50; performance.now() < deadline; wait = Math.min(2 * wait, 2_000)) {
    const k = nextProbe++;
    await ctl.call(`[shout] ${GLOBAL_CHANNEL}!p${k}`);
    const until = performance.now() + wait;
    while (performance.now() < until) {
      if ((await workers.probed(k)) >= expected) return;
      await workers.nextProgress(10);
    }
  }
  throw new Error(`browsers did not all log in within ${ms} ms`);
}

// Waits until `received()` reaches `expected`, or nothing has arrived for STALL_MS.
export async function untilDelivered(workers: Workers, received: () => number, expected: number): Promise<void> {
  let last = -1;
  let lastChange = performance.now();
  while (received() < expected) {
    const now = performance.now();
    if (received() !== last) {
      last = received();
      lastChange = now;
    } else if (now - lastChange > STALL_MS) return;
    await workers.nextProgress(50);
  }
}

function deliveryFigures(
  received: number,
  expected: number,
  s0: ProcSample,
  s1: ProcSample,
  c0: ProcSample,
  c1: ProcSample,
  latency: Histogram,
): Figures {
  const seconds = (s1.at - s0.at) / 1000;
  return {
    delivered: received,
    lost: Math.max(0, expected - received),
    perSec: received / seconds,
    cpuUsPer: cpuBetween(s0, s1).us / Math.max(1, received),
    serverCores: cpuBetween(s0, s1).cores,
    clientCores: cpuBetween(c0, c1).cores,
    p50Ms: latency.quantile(0.5) / 1000,
    p99Ms: latency.quantile(0.99) / 1000,
    maxMs: latency.max / 1000,
  };
}

function commandFigures(count: number, s0: ProcSample, s1: ProcSample, c0: ProcSample, c1: ProcSample, errors: number): Figures {
  return {
    commands: count,
    perSec: count / ((s1.at - s0.at) / 1000),
    cpuUsPer: cpuBetween(s0, s1).us / count,
    serverCores: cpuBetween(s0, s1).cores,
    clientCores: cpuBetween(c0, c1).cores,
    errors,
  };
}
