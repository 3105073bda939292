// Issue 14 item 9, end to end with real processes: the data file is private to its owner, a boolean
// setting means what it says, an ID too large to be exact is echoed as sent, and a held-message drop
// summary is logged when its window ends rather than at the next drop.

import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser, within } from "./helpers.ts";
import { MAIN, LOOPBACK, runToExit, spawnServer as spawn, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-surprises-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const started: Spawned[] = [];
afterEach(() => {
  for (const server of started.splice(0)) server.proc.kill("SIGKILL");
});

const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? "", HOME: dir, ...extra });

async function serve(flags: string[], extraEnv: Record<string, string> = {}): Promise<Spawned> {
  const server = await spawn(["bun", MAIN, ...LOOPBACK, ...flags], { env: env(extraEnv), cwd: dir });
  started.push(server);
  return server;
}

test("the data file and its WAL are created readable and writable by their owner only (0600)", async () => {
  const data = join(dir, "private.db");
  const server = await serve(["--data", data]);
  const ctl = await ControlClient.connect(server.privatePort);
  await newUser(ctl);
  expect(await ctl.call("[store] k!v")).toBe("[ok] stored k");
  const files = [data, `${data}-wal`, `${data}-shm`].filter((file) => existsSync(file));
  expect(files).toContain(`${data}-wal`);
  for (const file of files) expect(`${file} ${(statSync(file).mode & 0o777).toString(8)}`).toBe(`${file} 600`);
  expect(await server.stop()).toBe(0);
});

describe("a boolean setting takes true|false|1|0|yes|no from flag, variable and file alike", () => {
  /** Whether text a browser sends reaches a listening backend: the [message] comes before [offline] or never. */
  async function upstreamOn(server: Spawned): Promise<boolean> {
    const ctl = await ControlClient.connect(server.privatePort);
    const user = await newUser(ctl);
    expect(await ctl.call("[listen]")).toStartWith("[ok]");
    expect(await ctl.replies.next("[epoch]")).toStartWith("[epoch] ");
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    expect(await ctl.replies.next("[online]")).toBe(`[online] ${user.id}`);
    browser.send("hello upstream");
    browser.close();
    const next = await ctl.replies.next("[message] or [offline]");
    if (next === `[offline] ${user.id}`) return false;
    expect(next).toBe(`[message] ${user.id}!hello upstream`);
    return true;
  }

  const file = join(dir, "upstream.json");
  writeFileSync(file, JSON.stringify({ upstream: "false" }));
  test.each([
    [["--upstream", "false"], {}, false],
    [["--upstream=false"], {}, false],
    [["--upstream", "no"], {}, false],
    [[], { WEBTALK_UPSTREAM: "false" }, false],
    [["--config", file], {}, false],
    [["--upstream"], {}, true],
    [["--upstream", "yes"], {}, true],
    [["--upstream", "--log-level", "info"], {}, true],
  ] as [string[], Record<string, string>, boolean][])("%p %p: upstream %p", async (flags, variables, on) => {
    const server = await serve(flags, variables);
    expect(await upstreamOn(server)).toBe(on);
  });

  test.each([
    [["--upstream", "maybe"], {}, 'invalid --upstream value "maybe"'],
    [["--upstream=off"], {}, 'invalid --upstream value "off"'],
    [[], { WEBTALK_UPSTREAM: "on" }, 'invalid WEBTALK_UPSTREAM value "on"'],
    [["--demo", "nah"], {}, 'invalid --demo value "nah"'],
  ] as [string[], Record<string, string>, string][])("%p %p: exit 2, %p", async (flags, variables, message) => {
    const result = await runToExit(["bun", MAIN, ...LOOPBACK, "--admin", "off", ...flags], { env: env(variables), cwd: dir, timeoutMs: 8_000 });
    expect(result.stderr).toContain(message);
    expect(result.code).toBe(2);
  });
});

test("an ID beyond the exact integers is echoed as sent, not rounded", async () => {
  const server = await serve([]);
  const ctl = await ControlClient.connect(server.privatePort);
  expect(await ctl.call("[killuser] 99999999999999999999999")).toBe("[error] no such user 99999999999999999999999");
  expect(await ctl.call("[killuser] 9007199254740993")).toBe("[error] no such user 9007199254740993");
  expect(await ctl.call("[whisper] 99999999999999999999999!x")).toBe("[error] no such user 99999999999999999999999");
  expect(await ctl.call("[shout] 99999999999999999999999!x")).toBe("[error] no such channel 99999999999999999999999");
  expect(await ctl.call("[join] 1!99999999999999999999999")).toBe("[error] no such user 99999999999999999999999");
});

test("held-message drops after the first are summed and logged when their window ends", async () => {
  const server = await serve(["--queue", "1"]);
  const ctl = await ControlClient.connect(server.privatePort);
  const user = await newUser(ctl);
  const drops = () => server.output().match(/held-message limit reached[^\n]*/g) ?? [];
  for (let i = 0; i < 4; i++) expect(await ctl.call(`[whisper] ${user.id}!m${i}`)).toBe("[ok] message queued");
  // m0 is held; m1 drops it (logged at once); m2 and m3 drop two more inside the 10 s window.
  await within(
    (async () => {
      while (drops().length < 1) await Bun.sleep(20);
    })(),
    "the first drop's log line",
  );
  expect(drops()[0]).toContain("dropped 1 oldest message(s)");
  // No further drop comes: the summary of the other two must still appear once the window ends.
  await within(
    (async () => {
      while (drops().length < 2) await Bun.sleep(50);
    })(),
    "the window's summary",
    14_000,
  );
  expect(drops()[1]).toContain("dropped 2 oldest message(s) for 1 user(s)");
}, 20_000);
