// Breaker test (issue 14, identity): a --data file copied to a second server (a standby, a new host
// while the old one still runs, a restore onto another machine). Both servers then carry the SAME
// epoch, so a backend that follows the README ("keep the epoch with the IDs; when the one it sees
// differs, create its users again") sees nothing to do when it moves from one to the other. But each
// server issues IDs from its own copy of the counter and the clock, so both hand out the same IDs in
// the same millisecond: a whisper for A's user reaches the browser of B's user with that ID.
//
// The promise checked: a backend that checks the epoch never whispers to somebody else. Either the
// two copies must not issue the same ID, or their epochs must differ.

import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient } from "./helpers.ts";
import { stateEpoch } from "./epochs.ts";
import { MAIN, spawnServer, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-copy-ids-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LOOPBACK = ["--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--data-sync", "normal"];

/** Pipelines `count` [newuser] and answers ID → token. */
async function burst(ctl: ControlClient, count: number): Promise<Map<number, string>> {
  ctl.write(encodeFrames(Array.from({ length: count }, () => "[newuser]")));
  const tokens = new Map<number, string>();
  for (const reply of await ctl.replies.take(count, "[newuser] replies", 30_000)) {
    const token = reply.slice("[ok] ".length);
    tokens.set(Number(token.split("!")[0]), token);
  }
  return tokens;
}

test("two servers on copies of one data file: a backend that checks the epoch never whispers to another user", async () => {
  const original = join(dir, "a.db");
  const copy = join(dir, "b.db");
  // The data file in use: some users, then a clean stop (the WAL is folded in).
  const first = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", original]);
  const setup = await ControlClient.connect(first.privatePort);
  await burst(setup, 10);
  setup.close();
  expect(await first.stop()).toBe(0);
  copyFileSync(original, copy);
  if (existsSync(`${original}-wal`)) copyFileSync(`${original}-wal`, `${copy}-wal`);

  const servers: Spawned[] = [];
  try {
    servers.push(await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", original]));
    servers.push(await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", copy]));
    const [a, b] = await Promise.all(servers.map((s) => ControlClient.connect(s.privatePort)));
    const epochA = await stateEpoch(a!);
    const epochB = await stateEpoch(b!);

    // Both in use at the same time, as a backend's users sign up on each.
    const [onA, onB] = await Promise.all([burst(a!, 3_000), burst(b!, 3_000)]);
    const shared = [...onA.keys()].filter((id) => onB.has(id));
    console.log(`epoch A ${epochA}, epoch B ${epochB}; ${shared.length} of 3000 IDs issued by both servers`);

    if (shared.length > 0 && epochA === epochB) {
      // The backend created alice on A (ID X, epoch E). It moves to B: the epoch is E there too, so it
      // keeps alice's ID. B's own user with ID X (bob) is online.
      const x = shared[0]!;
      const bob = await Browser.open(servers[1]!.publicUrl);
      bob.send(onB.get(x)!);
      for (let i = 0; i < 100 && (await b!.ok(`[online] ${x}`)) !== "1"; i++) await Bun.sleep(20);
      const reply = await b!.call(`[whisper] ${x}!alice's private data`);
      const got = reply === "[ok] message sent" ? await bob.messages.next("bob's messages") : undefined;
      bob.close();
      expect(got, `B answered ${reply} and bob's browser received ${JSON.stringify(got)}`).toBeUndefined();
    }
    a!.close();
    b!.close();
  } finally {
    for (const s of servers) await s.stop("SIGKILL");
  }
}, 60_000);
