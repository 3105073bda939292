// The data file's seal (issue 14): FILE.seal beside a --data file names the file this path last used.
// A file restored from a backup or copied to a new path no longer matches it and starts a new state
// epoch and a new replay epoch, said in one warning line; a file moved together with its FILE.seal
// keeps both epochs. (test/data-file-restore-replay.test.ts and data-file-copy-ids.test.ts cover the
// restore and the copy themselves.)

import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser, within } from "./helpers.ts";
import { stateEpochOf } from "./epochs.ts";
import { MAIN, LOOPBACK, runToExit, spawnServer, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-seal-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WARNING = /not the one this path last used|has no .*\.seal beside it/;

function serve(data: string): Promise<Spawned> {
  return spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
}

test("moving FILE and FILE.seal together keeps the state epoch and the replay epoch (a v2 page resumes)", async () => {
  const from = join(dir, "old-host");
  const to = join(dir, "new-host");
  mkdirSync(from);
  mkdirSync(to);
  const data = join(from, "webtalk.db");

  let server = await serve(data);
  let ctl = await ControlClient.connect(server.privatePort);
  const user = await newUser(ctl);
  const epoch = await stateEpochOf(server);
  let page = await Browser.open(server.publicUrl, "webtalk.v2");
  page.send(user.token);
  const notice = await page.messages.next("#epoch");
  await ctl.ok("[shout] 1!before the move");
  expect(await page.messages.next("the shout")).toBe("1:1!before the move");
  page.close();
  ctl.close();
  expect(await server.stop()).toBe(0);
  expect(existsSync(`${data}.seal`)).toBe(true);
  expect(statSync(`${data}.seal`).mode & 0o777).toBe(0o600);

  for (const name of ["webtalk.db", "webtalk.db.seal"]) renameSync(join(from, name), join(to, name));
  server = await serve(join(to, "webtalk.db"));
  try {
    expect(await stateEpochOf(server)).toBe(epoch);
    ctl = await ControlClient.connect(server.privatePort);
    await ctl.ok("[shout] 1!after the move");
    page = await Browser.open(server.publicUrl, "webtalk.v2");
    page.send(`${user.token}!${notice.slice("#epoch ".length)}!1:1`);
    expect(await page.messages.next("#epoch")).toBe(notice);
    expect(await page.messages.next("the replayed shout")).toBe("1:2!after the move");
    expect(server.output()).not.toMatch(WARNING);
    page.close();
    ctl.close();
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);

test("a data file copied to a new path without its seal: a new epoch, said in one warning line", async () => {
  const data = join(dir, "original.db");
  const copy = join(dir, "copy.db");
  let server = await serve(data);
  const epoch = await stateEpochOf(server);
  expect(await server.stop()).toBe(0);
  copyFileSync(data, copy);

  server = await serve(copy);
  try {
    expect(await stateEpochOf(server)).not.toBe(epoch);
    const warnings = server.output().split("\n").filter((line) => WARNING.test(line));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(copy);
  } finally {
    await within(server.stop(), "stop");
  }
  // The original, with its own seal, is still the file its path last used.
  server = await serve(data);
  try {
    expect(await stateEpochOf(server)).toBe(epoch);
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);

test("a copy taken while running, restored after a clean stop, is a new epoch", async () => {
  const data = join(dir, "hot.db");
  const backup = join(dir, "hot-backup.db");
  let server = await serve(data);
  const ctl = await ControlClient.connect(server.privatePort);
  const epoch = await stateEpochOf(server);
  await newUser(ctl);
  // A copy of the file and its WAL while the server runs (and writes nothing).
  copyFileSync(data, backup);
  copyFileSync(`${data}-wal`, `${backup}-wal`);
  await newUser(ctl);
  ctl.close();
  expect(await server.stop()).toBe(0);

  for (const f of [data, `${data}-wal`, `${data}-shm`]) rmSync(f, { force: true });
  copyFileSync(backup, data);
  copyFileSync(`${backup}-wal`, `${data}-wal`);
  server = await serve(data);
  try {
    expect(await stateEpochOf(server)).not.toBe(epoch);
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);

test("a crash (kill -9) keeps the state epoch, with no warning: the file is still the one its path last used", async () => {
  const data = join(dir, "crashed.db");
  let server = await serve(data);
  const epoch = await stateEpochOf(server);
  expect(await server.stop("SIGKILL")).not.toBe(0);
  server = await serve(data);
  try {
    expect(await stateEpochOf(server)).toBe(epoch);
    expect(server.output()).not.toMatch(WARNING);
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);

test("a file last used by a webtalk without seals (no seal in it, no FILE.seal): a new epoch, said in one warning line", async () => {
  const data = join(dir, "unsealed.db");
  let server = await serve(data);
  const epoch = await stateEpochOf(server);
  expect(await server.stop()).toBe(0);
  // What an earlier webtalk left: the same file without the seal row, and no FILE.seal.
  const db = new Database(data);
  db.run("DELETE FROM replay_meta WHERE name = 'seal'");
  db.close();
  rmSync(`${data}.seal`);
  server = await serve(data);
  try {
    expect(await stateEpochOf(server)).not.toBe(epoch);
    expect(server.output().split("\n").filter((line) => line.includes("without data file seals"))).toHaveLength(1);
  } finally {
    await within(server.stop(), "stop");
  }
}, 60_000);

for (const [what, blocked] of [
  ["read", ".seal"],
  ["written", ".seal.tmp"],
] as const) {
  test(`a FILE.seal that cannot be ${what}: one line naming it, exit 2`, async () => {
    const data = join(dir, `unsealable-${what}.db`);
    // A directory in the way (not empty, so nothing can be renamed over it or remove it).
    mkdirSync(`${data}${blocked}`);
    writeFileSync(join(`${data}${blocked}`, "x"), "");
    const result = await runToExit(["bun", MAIN, ...LOOPBACK, "--data", data]);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`cannot ${what === "read" ? "read" : "write"} ${data}.seal`);
    expect(result.code).toBe(2);
  }, 30_000);
}
