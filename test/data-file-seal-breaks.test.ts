// Breaker tests (issue 14, the --data seal, README "Durable state" -> FILE.seal).
//
// 1. A clean stop (SIGTERM), or a start, on a nearly full disk (2 free pages of a 2 MB tmpfs): the new
//    seal is committed into the data file (its WAL has room) and writing FILE.seal then fails (one more
//    block). The next start, once there is room again, finds the two different and starts a new epoch
//    with the warning "not the one this path last used": backends are told to create every user again
//    and v2 pages get #epoch, though the file was never restored, copied or moved.
// 2. "a restore is always a new epoch": a filesystem snapshot of FILE and FILE-wal taken while webtalk
//    runs (what the README recommends for a hot backup), restored after a crash (kill -9, a power loss)
//    keeps the epoch, because FILE.seal still names the token written at that run's start. A user
//    killed after the snapshot comes back, its old token logs in and receives the next shout to
//    channel 1, and the backend is never told.

import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, statSync, symlinkSync, truncateSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser, within } from "./helpers.ts";
import { stateEpochOf } from "./epochs.ts";
import { MAIN, LOOPBACK, type Spawned } from "./process.ts";
import { spawnPerTest } from "./spawn-per-test.ts";
import { fillDisk, mountSmallDisk } from "./small-disk.ts";

const { dir: disk, problem: mountProblem } = mountSmallDisk("webtalk-seal-full-", "the full-disk seal test");
const dir = mkdtempSync(join(tmpdir(), "webtalk-seal-breaks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const spawnServer = spawnPerTest(); // ended before the umount
async function serve(data: string, cwd?: string): Promise<Spawned> {
  return spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data], cwd ? { env: { PATH: process.env.PATH ?? "", HOME: cwd }, cwd } : undefined);
}

describe.skipIf(!!mountProblem)("a legitimate stop or start on a (nearly) full disk", () => {
  /** Fills the disk, then frees `pages` pages of 4 KiB: room for some writes and not others. */
  function leaveRoom(filler: string, pages: number): void {
    fillDisk(filler);
    truncateSync(filler, statSync(filler).size - pages * 4096);
  }

  async function run(room: number, stopOnFullDisk: boolean): Promise<string[]> {
    const data = join(disk, `webtalk-${room}-${stopOnFullDisk}.db`);
    const filler = join(disk, "filler");
    let server = await serve(data, disk);
    const epoch = await stateEpochOf(server);
    if (stopOnFullDisk) {
      leaveRoom(filler, room);
      expect(await server.stop("SIGTERM")).toBe(0);
    } else {
      expect(await server.stop("SIGTERM")).toBe(0);
      leaveRoom(filler, room);
      // A start on the (nearly) full disk: it may refuse (exit 2) or run; then it crashes or is stopped.
      const attempt = Bun.spawn(["bun", MAIN, ...LOOPBACK, "--data", data], { cwd: disk, stdout: "ignore", stderr: "ignore" });
      const code = await Promise.race([attempt.exited, Bun.sleep(3000).then(() => "running")]);
      if (code === "running") {
        attempt.kill("SIGKILL");
        await attempt.exited;
      }
    }
    rmSync(filler);
    for (const f of [join(disk, `webtalk-${room}-${stopOnFullDisk}.db-shm`)]) rmSync(f, { force: true });
    server = await serve(data, disk);
    const after = await stateEpochOf(server);
    const warned = server.output().includes("not the one this path last used");
    await server.stop("SIGTERM");
    for (const f of [data, `${data}-wal`, `${data}.seal`]) rmSync(f, { force: true });
    return after === epoch && !warned ? [] : [`${stopOnFullDisk ? "SIGTERM" : "start"} with ${room} free page(s): epoch ${epoch} -> ${after}${warned ? " (warned: not the one this path last used)" : ""}`];
  }

  test("keeps the epoch for the next start once there is room (the file was never restored, copied or moved)", async () => {
    const changed: string[] = [];
    for (const stopOnFullDisk of [true, false]) for (let room = 0; room <= 4; room++) changed.push(...(await run(room, stopOnFullDisk)));
    console.log(changed.join("\n"));
    expect(changed).toEqual([]);
  }, 60_000);
});

test("a hot snapshot (FILE and FILE-wal) restored after a crash, FILE.seal deleted as the README says, is a new epoch", async () => {
  const data = join(dir, "webtalk.db");
  const snap = join(dir, "snapshot.db");
  let server = await serve(data);
  let ctl = await ControlClient.connect(server.privatePort);
  const mallory = await newUser(ctl);
  const epoch = await stateEpochOf(server);
  // The hot backup: FILE and FILE-wal together, as a filesystem snapshot would take them (no FILE.seal).
  copyFileSync(data, snap);
  if (existsSync(`${data}-wal`)) copyFileSync(`${data}-wal`, `${snap}-wal`);
  // Later: mallory is revoked. Then the machine crashes.
  expect(await ctl.call(`[killuser] ${mallory.id}`)).toBe("[ok] user killed");
  ctl.close();
  expect(await server.stop("SIGKILL")).not.toBe(0);

  // The operator restores the snapshot as the README says for a copy taken while webtalk ran: FILE and
  // FILE-wal, and FILE.seal deleted. (Without that step the restore cannot be told from the crashed run
  // it was copied from: the seal changes only at a start and a clean stop. A documented limit.)
  for (const f of [data, `${data}-wal`, `${data}-shm`, `${data}.seal`]) rmSync(f, { force: true });
  copyFileSync(snap, data);
  if (existsSync(`${snap}-wal`)) copyFileSync(`${snap}-wal`, `${data}-wal`);
  server = await serve(data);
  ctl = await ControlClient.connect(server.privatePort);
  const after = await stateEpochOf(server);
  const page = await Browser.open(server.publicUrl);
  page.send(mallory.token);
  for (let i = 0; i < 50 && (await ctl.call(`[online] ${mallory.id}`)) !== "[ok] 1"; i++) await Bun.sleep(20);
  await ctl.ok("[shout] 1!to everyone still here");
  const got = await Promise.race([page.messages.next("a shout"), page.closed.then((c) => `closed ${c.code}`)]);
  console.log(`epoch ${epoch} -> ${after}; the killed user's page got: ${got}`);
  page.close();
  ctl.close();
  expect(after !== epoch || !got.startsWith("to everyone"), `killed user's old token got ${JSON.stringify(got)} with the epoch unchanged`).toBe(true);
  await within(server.stop(), "stop");
}, 60_000);

test("a data file opened through a symlink and through its real path keeps one epoch (one seal, beside the real file)", async () => {
  const data = join(dir, "real.db");
  const link = join(dir, "link.db");
  let server = await serve(data);
  const epoch = await stateEpochOf(server);
  expect(await server.stop()).toBe(0);
  symlinkSync(data, link);
  server = await serve(link);
  expect(await stateEpochOf(server)).toBe(epoch);
  expect(await server.stop()).toBe(0);
  server = await serve(data);
  expect(await stateEpochOf(server)).toBe(epoch);
  expect(await server.stop()).toBe(0);
  expect(existsSync(`${link}.seal`)).toBe(false);
}, 60_000);
