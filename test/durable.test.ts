// `--data FILE` end to end, with real processes: what a backend and its browsers had before a
// restart (graceful or SIGKILL) is there after it, and a file that cannot be used stops the start.

import { Database } from "bun:sqlite";
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloseCode } from "../src/protocol/codes.ts";
import { SCHEMA_VERSION } from "../src/state/sqlite-file.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { MAIN, LOOPBACK, ROOT, runToExit, spawnServer as spawn, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-durable-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// A failed expectation must not leave a server running: each one started is killed by its PID.
const started: Spawned[] = [];
afterEach(() => {
  for (const server of started.splice(0)) server.proc.kill("SIGKILL");
});
const spawnServer = async (...args: Parameters<typeof spawn>) => {
  const server = await spawn(...args);
  started.push(server);
  return server;
};

const env = { PATH: process.env.PATH ?? "", HOME: dir };
const serve = (data: string, ...flags: string[]) => spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data, ...flags], { env, cwd: dir });

/** Logs a browser in and returns it with the messages held for it (those before a fresh marker). */
async function logIn(url: string, ctl: ControlClient, user: User): Promise<[Browser, string[]]> {
  const marker = `marker-${Math.random()}`;
  expect(await ctl.call(`[whisper] ${user.id}!${marker}`)).toBe("[ok] message queued");
  const browser = await Browser.open(url);
  browser.send(user.token);
  const held: string[] = [];
  for (let m = await browser.messages.next("held messages"); m !== marker; m = await browser.messages.next()) held.push(m);
  return [browser, held];
}

describe("a restart with the same --data file", () => {
  test("keeps users, channels, memberships, held messages, the store and the ID sequences", async () => {
    const data = join(dir, "walkthrough.db");
    let server = await serve(data);
    expect(server.output()).toContain(`data    ${data}: 0 users, 1 channels, 0 held`);
    let ctl = await ControlClient.connect(server.privatePort);
    const [alice, bob, gone] = [await newUser(ctl), await newUser(ctl), await newUser(ctl)];
    const room = await ctl.ok("[newchannel]");
    expect(await ctl.call(`[join] ${room}!${alice.id}`)).toBe("[ok] user joined");
    expect(await ctl.call(`[join] ${room}!${bob.id}`)).toBe("[ok] user joined");
    expect(await ctl.call(`[killuser] ${gone.id}`)).toBe("[ok] user killed");
    expect(await ctl.call(`[whisper] ${bob.id}!held across the restart`)).toBe("[ok] message queued");
    expect(await ctl.call("[store] config!v1")).toBe("[ok] stored config");
    const [aliceBrowser] = await logIn(server.publicUrl, ctl, alice);

    // A graceful stop: browsers are told to come back (1001).
    expect(await server.stop("SIGTERM")).toBe(0);
    expect((await aliceBrowser.closedWithin()).code).toBe(CloseCode.shuttingDown.code);
    server = await serve(data);
    expect(server.output()).toContain(`data    ${data}: 2 users, 2 channels, 1 held`);
    ctl = await ControlClient.connect(server.privatePort);
    const [alice2] = await logIn(server.publicUrl, ctl, alice);
    expect(await ctl.call(`[shout] ${room}!to the room`)).toBe("[ok] message sent");
    expect(await alice2.messages.next()).toBe("to the room");

    // A crash: nothing is flushed or closed on the way out.
    expect(await server.stop("SIGKILL")).toBe(137);
    server = await serve(data);
    ctl = await ControlClient.connect(server.privatePort);
    const [bobBrowser, held] = await logIn(server.publicUrl, ctl, bob);
    expect(held).toEqual(["held across the restart"]);
    const [alice3] = await logIn(server.publicUrl, ctl, alice);
    expect(await ctl.call(`[shout] ${room}!again`)).toBe("[ok] message sent");
    expect(await alice3.messages.next()).toBe("again");
    expect(await bobBrowser.messages.next()).toBe("again");
    expect(await ctl.call("[retrieve] config")).toBe("[ok] v1");
    expect(await ctl.call(`[whisper] ${gone.id}!x`)).toBe(`[error] no such user ${gone.id}`);
    const wrong = await Browser.open(server.publicUrl);
    wrong.send(`${gone.id}!${gone.salt}`);
    expect((await wrong.closedWithin()).code).toBe(CloseCode.loginFailed.code);
    // IDs go on above where they were, the killed user's included.
    expect(Number((await ctl.ok("[newuser]")).split("!")[0])).toBeGreaterThan(gone.id);
    expect(Number(await ctl.ok("[newchannel]"))).toBeGreaterThan(Number(room));
    ctl.close();
    expect(await server.stop()).toBe(0);
  }, 30_000);

  test("WEBTALK_DATA and --data-sync normal work the same way", async () => {
    const data = join(dir, "env.db");
    const start = () =>
      spawnServer(["bun", MAIN, ...LOOPBACK, "--data-sync", "normal"], { env: { ...env, WEBTALK_DATA: data }, cwd: dir });
    let server = await start();
    expect(server.output()).toContain("sync normal");
    let ctl = await ControlClient.connect(server.privatePort);
    const user = await newUser(ctl);
    expect(await server.stop("SIGKILL")).toBe(137);
    server = await start();
    ctl = await ControlClient.connect(server.privatePort);
    const [browser, held] = await logIn(server.publicUrl, ctl, user);
    expect(held).toEqual([]);
    browser.close();
    ctl.close();
    expect(await server.stop()).toBe(0);
  }, 30_000);
});

describe("a data file that cannot be used stops the start with exit code 2", () => {
  const refuse = async (data: string, message: string) => {
    const result = await runToExit(["bun", MAIN, ...LOOPBACK, "--data", data], { env, cwd: dir });
    expect(result.stderr.trim()).toBe(`webtalk: ${message}`);
    expect(result.code).toBe(2);
  };

  test("one written by a newer webtalk", async () => {
    const data = join(dir, "newer.db");
    const server = await serve(data);
    expect(await server.stop()).toBe(0);
    const db = new Database(data);
    db.run("PRAGMA user_version = 99");
    db.close();
    await refuse(data, `data file ${data} has schema version 99, written by a newer webtalk; this one reads up to ${SCHEMA_VERSION}`);
  });

  test("a corrupt one, and one that is not SQLite at all", async () => {
    const data = join(dir, "garbage.db");
    writeFileSync(data, Buffer.alloc(64 * 1024, "garbage "));
    await refuse(data, `data file ${data} is not a SQLite database`);
  });

  test("an unwritable path", async () => {
    const data = join(dir, "no-such-dir", "x.db");
    await refuse(data, `cannot open data file ${data} for writing: directory ${join(dir, "no-such-dir")} does not exist`);
  });

  test("one in use by another running webtalk", async () => {
    const data = join(dir, "in-use.db");
    const first = await serve(data);
    await refuse(data, `data file ${data} is in use by another process (another webtalk?)`);
    expect(await first.stop()).toBe(0);
  });
});

test("the compiled binary keeps its state in --data with nothing else installed", async () => {
  const binary = join(dir, "webtalk");
  expect((await runToExit([process.execPath, join(ROOT, "scripts/build.ts"), "--outfile", binary])).code).toBe(0);
  const data = join(dir, "binary.db");
  const bare = { PATH: "/nonexistent", HOME: dir };
  const start = () => spawnServer([binary, ...LOOPBACK, "--data", data], { env: bare, cwd: dir });
  let server = await start();
  let ctl = await ControlClient.connect(server.privatePort);
  const user = await newUser(ctl);
  expect(await ctl.call(`[whisper] ${user.id}!kept by the binary`)).toBe("[ok] message queued");
  expect(await server.stop("SIGKILL")).toBe(137);
  server = await start();
  ctl = await ControlClient.connect(server.privatePort);
  const [, held] = await logIn(server.publicUrl, ctl, user);
  expect(held).toEqual(["kept by the binary"]);
  ctl.close();
  expect(await server.stop()).toBe(0);
}, 60_000);
