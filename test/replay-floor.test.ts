// Issue 14 (no message to the wrong person, by channel): a webtalk.v2 resume replays only what a channel
// sent while the user was a member. A position from before the membership answers `#gap C` and replays
// what came after the join; channel 1 (joined at [newuser]) never replays what was shouted before the
// user existed; a member that never left resumes with everything and no gap. End to end against real
// server processes (and a real redis-server for the cluster case).

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { replayEpoch } from "./epochs.ts";
import { MAIN, LOOPBACK, spawnServer, type Spawned } from "./process.ts";
import { haveRedis, useRedis, uniquePrefix } from "./redis-server.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-replay-floor-"));
const redis = useRedis();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;

function start(mode: "memory" | "--data"): Promise<Spawned> {
  const data = mode === "--data" ? ["--data", join(dir, `floor-${++files}.db`)] : [];
  return spawnServer(["bun", MAIN, ...LOOPBACK, ...data]);
}

/** Channel messages up to the whisper `marker` (`u:N!marker`); earlier markers replayed are left out. */
async function until(browser: Browser, marker: string): Promise<string[]> {
  const seen: string[] = [];
  for (;;) {
    const m = await browser.messages.next(`the marker ${marker}`);
    if (m.startsWith("u:") && m.endsWith(`!${marker}`)) return seen;
    if (!m.startsWith("u:")) seen.push(m);
  }
}

/** A webtalk.v2 page that logs in with `positions` and returns everything it is sent up to a marker. */
async function resume(url: string, ctl: ControlClient, user: User, epoch: string | undefined, positions: string): Promise<string[]> {
  const page = await Browser.open(url, "webtalk.v2");
  try {
    page.send(epoch === undefined ? user.token : `${user.token}!${epoch}!${positions}`);
    const first = await page.messages.next("#epoch");
    expect(first).toStartWith("#epoch ");
    const marker = `end-${Math.random()}`;
    await ctl.ok(`[whisper] ${user.id}!${marker}`);
    return await until(page, marker);
  } finally {
    page.close();
    await page.closed;
  }
}

/** The epoch of a server's replay log, as a v2 login without positions is told. */
async function epochOf(url: string, user: User): Promise<string> {
  const page = await Browser.open(url, "webtalk.v2");
  page.send(user.token);
  const epoch = await replayEpoch(page);
  page.close();
  await page.closed;
  return epoch;
}

for (const mode of ["memory", "--data"] as const) {
  describe(`replay floor (${mode})`, () => {
    test("a position from before the membership gets #gap, then only what was sent after the join", async () => {
      const server = await start(mode);
      try {
        const ctl = await ControlClient.connect(server.privatePort);
        const channel = Number(await ctl.ok("[newchannel]"));
        const bob = await newUser(ctl);
        await ctl.ok(`[shout] ${channel}!secret 1`);
        await ctl.ok(`[shout] ${channel}!secret 2`);
        await ctl.ok(`[join] ${channel}!${bob.id}`);
        await ctl.ok(`[join] ${channel}!${bob.id}`); // redundant: must not move anything
        await ctl.ok(`[shout] ${channel}!after the join`);
        const epoch = await epochOf(server.publicUrl, bob);
        // A hand-written client asks for the channel's whole window.
        const got = await resume(server.publicUrl, ctl, bob, epoch, `${channel}:0,u:0`);
        expect(got).toEqual([`#gap ${channel}`, `${channel}:3!after the join`]);
        ctl.close();
      } finally {
        await server.stop();
      }
    }, 30_000);

    test("channel 1: a user created after shouts resumes with 1:0 and gets nothing from before it existed", async () => {
      const server = await start(mode);
      try {
        const ctl = await ControlClient.connect(server.privatePort);
        await ctl.ok("[shout] 1!before anyone");
        const early = await newUser(ctl);
        await Bun.sleep(2); // a shout in the millisecond of a user's creation is taken as before it (a gap)
        await ctl.ok("[shout] 1!before carol 1");
        await ctl.ok("[shout] 1!before carol 2");
        await Bun.sleep(2); // carol's ID (µs clock) is then after both shouts' millisecond
        const carol = await newUser(ctl);
        await Bun.sleep(2);
        await ctl.ok("[shout] 1!hello carol");
        const epoch = await epochOf(server.publicUrl, carol);
        const got = await resume(server.publicUrl, ctl, carol, epoch, "1:0,u:0");
        expect(got).toEqual(["#gap 1", "1:4!hello carol"]);
        // The earlier user, a member all along, still gets what came after it was created.
        const earlier = await resume(server.publicUrl, ctl, early, epoch, "1:1,u:0");
        expect(earlier).toEqual(["1:2!before carol 1", "1:3!before carol 2", "1:4!hello carol"]);
        ctl.close();
      } finally {
        await server.stop();
      }
    }, 30_000);

    test("a member that never left resumes with everything it missed and no gap", async () => {
      const server = await start(mode);
      try {
        const ctl = await ControlClient.connect(server.privatePort);
        const channel = Number(await ctl.ok("[newchannel]"));
        await ctl.ok(`[shout] ${channel}!before`);
        const dave = await newUser(ctl);
        await Bun.sleep(2); // the global shout below is in a later millisecond than dave's creation
        await ctl.ok(`[join] ${channel}!${dave.id}`);
        await ctl.ok(`[shout] ${channel}!one`);
        await ctl.ok(`[shout] 1!global`);
        await ctl.ok(`[join] ${channel}!${dave.id}`); // redundant join
        await ctl.ok(`[shout] ${channel}!two`);
        await ctl.ok(`[shout] ${channel}!three`);
        const epoch = await epochOf(server.publicUrl, dave);
        const got = await resume(server.publicUrl, ctl, dave, epoch, `${channel}:2,1:0,u:0`);
        expect(got).toEqual([`${channel}:3!two`, `${channel}:4!three`, "1:1!global"]);
        ctl.close();
      } finally {
        await server.stop();
      }
    }, 30_000);
  });
}

describe.skipIf(!haveRedis)("replay floor (--redis, two nodes)", () => {
  test("joined through one node, resumed on the other: nothing from while the user was not a member", async () => {
    const prefix = uniquePrefix("floor");
    const args = ["bun", MAIN, ...LOOPBACK, "--redis", redis.url, "--redis-prefix", prefix];
    const a = await spawnServer(args);
    const b = await spawnServer(args);
    try {
      const ca = await ControlClient.connect(a.privatePort);
      const cb = await ControlClient.connect(b.privatePort);
      const channel = Number(await ca.ok("[newchannel]"));
      const bob = await newUser(ca);
      await ca.ok(`[join] ${channel}!${bob.id}`);
      await ca.ok(`[shout] ${channel}!hello team`);
      await ca.ok(`[leave] ${channel}!${bob.id}`);
      await ca.ok(`[shout] ${channel}!private: we are letting bob go`);
      await ca.ok(`[join] ${channel}!${bob.id}`);
      await ca.ok(`[join] ${channel}!${bob.id}`); // redundant
      await ca.ok(`[shout] ${channel}!welcome back`);
      const epoch = await epochOf(b.publicUrl, bob);
      const got = await resume(b.publicUrl, cb, bob, epoch, `${channel}:1,u:0`);
      expect(got).toEqual([`#gap ${channel}`, `${channel}:3!welcome back`]);
      // A member all along (carol, joined before the first shout) resumes on node b without a gap.
      const carol = await newUser(ca);
      await ca.ok(`[join] ${channel}!${carol.id}`);
      await ca.ok(`[shout] ${channel}!four`);
      expect(await resume(b.publicUrl, cb, carol, epoch, `${channel}:3,u:0`)).toEqual([`${channel}:4!four`]);
      expect(await resume(b.publicUrl, cb, carol, epoch, `${channel}:2,u:0`)).toEqual([`#gap ${channel}`, `${channel}:4!four`]);
      ca.close();
      cb.close();
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 30_000);
});
