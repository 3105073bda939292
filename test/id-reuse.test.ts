// Issue 14, item 1: a restarted server that lost its data (memory mode, the default; or `--data` with
// the data file deleted) must never issue an ID an earlier run issued. A backend that still holds the
// old ID in its database gets "no such user", and a whisper meant for the old user never reaches the
// browser of a new one. End to end, with real server processes.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, expectNothingMore, loggedIn, newUser, type User } from "./helpers.ts";
import { MAIN, LOOPBACK, spawnServer, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-id-reuse-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One run of the server: its first user, logged in, then SIGTERM. Returns that user. */
async function firstRun(args: string[]): Promise<User> {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, ...args]);
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const [browser, alice] = await loggedIn(server, ctl);
    ctl.close();
    expect(await server.stop()).toBe(0);
    expect((await browser.closedWithin("the first run's browser to be closed at shutdown")).code).toBe(1001);
    return alice;
  } finally {
    await stopQuietly(server);
  }
}

/** The run after: the old ID is unknown, its token refused, its whisper reaches nobody. */
async function secondRun(args: string[], old: User): Promise<void> {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, ...args]);
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const [browser, bob] = await loggedIn(server, ctl);
    expect(bob.id).not.toBe(old.id);
    expect(bob.id).toBeGreaterThan(old.id);

    // The backend still holds the old ID: its whisper must not reach the new user's browser.
    expect(await ctl.call(`[whisper] ${old.id}!alice's private data`)).toBe(`[error] no such user ${old.id}`);
    await expectNothingMore(ctl, browser, bob.id);

    // A page that kept the old token: refused for good (the one login-failed code, so IDs cannot be probed).
    const stale = await Browser.open(server.publicUrl);
    stale.send(old.token);
    const closed = await stale.closedWithin("the old token's login to be refused");
    expect(closed.code).toBe(4001);

    // Other IDs the earlier run issued next are not this run's either.
    const carol = await newUser(ctl);
    expect(carol.id).toBeGreaterThan(bob.id);
    expect(await ctl.call(`[whisper] ${old.id + 1}!x`)).toBe(`[error] no such user ${old.id + 1}`);
    browser.close();
    ctl.close();
  } finally {
    await stopQuietly(server);
  }
}

async function stopQuietly(server: Spawned): Promise<void> {
  if (server.proc.exitCode === null) await server.stop();
}

describe("IDs are never reused after a restart that lost the data", () => {
  test("memory mode: a restarted server issues new IDs, and the old ID's whisper reaches nobody", async () => {
    const alice = await firstRun([]);
    await secondRun([], alice);
  }, 40_000);

  test("--data with the data file deleted between runs: the same", async () => {
    const data = join(dir, "webtalk.db");
    const alice = await firstRun(["--data", data]);
    for (const file of [data, `${data}-wal`, `${data}-shm`]) rmSync(file, { force: true });
    await secondRun(["--data", data], alice);
  }, 40_000);
});
