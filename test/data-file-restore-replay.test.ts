// Breaker test (issue 14: a --data file restored from an old copy). The README lists "a file restored
// from an old backup" among the data losses webtalk handles, and promises webtalk.v2 browsers that they
// never silently miss a message: they get the messages after their position, or `#gap`.
//
// A backup taken while webtalk is stopped (what the README recommends) is marked "closed cleanly", so
// the restored file keeps the replay epoch: the offsets go back to where they were at the backup, and
// the shouts sent after the restore are numbered again from there. A v2 browser that saw offsets up to N
// of the old timeline resumes with the same epoch and position N: the server finds N within the new
// timeline and replays only what follows it; the new messages numbered up to N are never sent, and the
// browser is not told. (The state's epoch does not change either, so the backend is not told.)

import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, messagesUntil, newUser, within } from "./helpers.ts";
import { stateEpoch } from "./epochs.ts";
import { MAIN, LOOPBACK, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-restore-replay-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The operator's restore: the data file's copies in use are removed and the backup takes its place. */
function restore(backup: string, data: string): void {
  for (const f of [data, `${data}-wal`, `${data}-shm`]) rmSync(f, { force: true });
  copyFileSync(backup, data);
}

test("a data file restored from a backup: a v2 browser gets every shout sent after the restore, or #gap", async () => {
  const data = join(dir, "webtalk.db");
  const backup = join(dir, "backup.db");

  // Run 1: a user, then a clean stop, then the backup (taken while stopped, as the README says).
  let server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
  let ctl = await ControlClient.connect(server.privatePort);
  const user = await newUser(ctl);
  ctl.close();
  expect(await server.stop()).toBe(0);
  expect(existsSync(`${data}-wal`)).toBe(false);
  copyFileSync(data, backup);

  // Run 2: the page (webtalk.v2) sees five shouts on channel 1, then goes away.
  server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
  ctl = await ControlClient.connect(server.privatePort);
  const stateEpochBefore = await stateEpoch(ctl);
  let page = await Browser.open(server.publicUrl, "webtalk.v2");
  page.send(user.token);
  const epochNotice = await page.messages.next("#epoch");
  expect(epochNotice).toStartWith("#epoch ");
  const replayEpoch = epochNotice.slice("#epoch ".length);
  for (let i = 1; i <= 5; i++) await ctl.ok(`[shout] 1!old-${i}`);
  await ctl.ok(`[whisper] ${user.id}!m1`);
  const before = await messagesUntil(page, "m1");
  expect(before).toEqual(["1:1!old-1", "1:2!old-2", "1:3!old-3", "1:4!old-4", "1:5!old-5"]);
  page.close();
  ctl.close();
  expect(await server.stop()).toBe(0);

  // The operator restores the backup.
  restore(backup, data);

  // Run 3: five shouts while the page is away, then it resumes from where it was.
  server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
  try {
    ctl = await ControlClient.connect(server.privatePort);
    const stateEpochAfter = await stateEpoch(ctl);
    for (let i = 1; i <= 5; i++) await ctl.ok(`[shout] 1!new-${i}`);
    page = await Browser.open(server.publicUrl, "webtalk.v2");
    page.send(`${user.token}!${replayEpoch}!1:5,u:1`);
    const notice = await page.messages.next("#epoch");
    await ctl.ok(`[whisper] ${user.id}!m2`);
    const after = await messagesUntil(page, "m2");
    console.log(`state epoch ${stateEpochBefore} -> ${stateEpochAfter}; replay epoch ${replayEpoch} -> ${notice}; resumed with: ${JSON.stringify(after)}`);
    const told = notice !== `#epoch ${replayEpoch}` || after.includes("#gap 1");
    const gotAll = ["new-1", "new-2", "new-3", "new-4", "new-5"].every((text) => after.some((m) => m.endsWith(`!${text}`)));
    expect(told || gotAll, `after the restore the page resumed silently with ${JSON.stringify([notice, ...after])}`).toBe(true);
    page.close();
    ctl.close();
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);

test("a data file restored from a backup: a user killed after the backup stays killed (or the epoch tells the backend)", async () => {
  const data = join(dir, "killed.db");
  const backup = join(dir, "killed-backup.db");
  let server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
  let ctl = await ControlClient.connect(server.privatePort);
  const mallory = await newUser(ctl); // in channel 1, like every user
  const epoch = await stateEpoch(ctl);
  ctl.close();
  expect(await server.stop()).toBe(0);
  copyFileSync(data, backup);

  // Later: mallory's access is revoked.
  server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
  ctl = await ControlClient.connect(server.privatePort);
  expect(await ctl.call(`[killuser] ${mallory.id}`)).toBe("[ok] user killed");
  ctl.close();
  expect(await server.stop()).toBe(0);

  // The operator restores the backup.
  restore(backup, data);
  server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
  try {
    ctl = await ControlClient.connect(server.privatePort);
    const epochAfter = await stateEpoch(ctl);
    const page = await Browser.open(server.publicUrl);
    page.send(mallory.token);
    for (let i = 0; i < 50 && (await ctl.call(`[online] ${mallory.id}`)) !== "[ok] 1"; i++) await Bun.sleep(20);
    await ctl.ok("[shout] 1!to everyone still here");
    const got = await Promise.race([page.messages.next("a shout"), page.closed.then((c) => `closed ${c.code}`)]);
    console.log(`epoch ${epoch} -> ${epochAfter}; the killed user's page got: ${got}`);
    page.close();
    ctl.close();
    expect(epochAfter !== epoch || !got.startsWith("to everyone"), `killed user's old token got ${JSON.stringify(got)} with the epoch unchanged`).toBe(true);
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);
