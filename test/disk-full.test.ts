// `--data` on a disk that fills up, end to end with a real process on a 2 MB tmpfs: a write that
// fails is an error for the command that caused it, never a crash; /healthz tells the operator;
// SIGTERM still closes cleanly; a start on the full disk is one line and exit 2.

import { describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ControlClient, newUser } from "./helpers.ts";
import { MAIN, LOOPBACK, runToExit, type Spawned } from "./process.ts";
import { spawnPerTest } from "./spawn-per-test.ts";
import { fillDisk, mountSmallDisk } from "./small-disk.ts";

const { dir, problem: mountProblem } = mountSmallDisk("webtalk-disk-full-", "disk-full tests");
const spawn = spawnPerTest(); // ended before the umount

const env = { PATH: process.env.PATH ?? "", HOME: dir };
const data = join(dir, "webtalk.db");
const filler = join(dir, "filler");

async function serve(): Promise<Spawned> {
  return spawn(["bun", MAIN, ...LOOPBACK, "--data", data], { env, cwd: dir });
}

/** Stores values until one fails (on a full disk, the first or second) and returns that reply. */
async function storeBig(ctl: ControlClient): Promise<string> {
  let reply = "";
  for (let i = 0; i < 40 && !reply.startsWith("[error]"); i++) reply = await ctl.call(`[store] big${i}!${"x".repeat(90_000)}`);
  return reply;
}

async function health(server: Spawned, path = "/healthz"): Promise<[number, string]> {
  const response = await fetch(`${server.adminUrl}${path}`);
  return [response.status, await response.text()];
}

describe.skipIf(!!mountProblem)("--data on a full disk", () => {
  test("writes answer [error], the process stays up, /healthz is 503 until a write succeeds, SIGTERM exits 0", async () => {
    const server = await serve();
    const ctl = await ControlClient.connect(server.privatePort);
    const alice = await newUser(ctl);
    expect(await health(server)).toEqual([200, expect.stringContaining('"ok"')]);

    fillDisk(filler);
    // Large enough that it cannot fit in whatever room the WAL has left.
    const store = await storeBig(ctl);
    expect(store).toStartWith("[error] ");
    expect(store).toContain(data);
    // Each either works or answers an error naming the problem; none ends the process.
    for (const command of ["[shout] 1!to everyone", `[whisper] ${alice.id}!to alice`, "[newuser]", "[shout] 1!again"]) {
      const reply = await ctl.call(command);
      expect(reply.startsWith("[ok] ") || reply.includes(data)).toBe(true);
      await Bun.sleep(20); // the replay log is written on the next turn of the event loop
    }
    expect(await ctl.call("[ping]")).toStartWith("[ok]");
    expect(server.proc.exitCode).toBeNull();
    const [status, body] = await health(server);
    expect(status).toBe(503);
    expect(body).toContain(data);
    // Not ready either, in one line naming the file.
    const [readyStatus, reason] = await health(server, "/readyz");
    expect(readyStatus).toBe(503);
    expect(reason).toMatch(/^not ready: [^\n]+\n$/);
    expect(reason).toContain(data);

    // Space again: the next write succeeds, and health follows it.
    rmSync(filler);
    expect(await ctl.call("[store] small!v")).toBe("[ok] stored small");
    expect((await health(server))[0]).toBe(200);
    expect(await health(server, "/readyz")).toEqual([200, "ready\n"]);

    fillDisk(filler);
    await storeBig(ctl);
    await ctl.call("[shout] 1!while full");
    const code = await server.stop("SIGTERM");
    expect(server.output()).not.toContain("    at ");
    expect(code).toBe(0);
  }, 30_000);

  /** A start on the full disk: one line naming the file on stderr, exit 2. */
  async function expectOneLineExit2(): Promise<void> {
    const result = await runToExit(["bun", MAIN, ...LOOPBACK, "--data", data], { env, cwd: dir });
    rmSync(filler, { force: true });
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(data);
    expect(result.code).toBe(2);
  }

  test("a start on the full disk prints one line and exits 2", async () => {
    for (const file of [filler, data, `${data}-wal`, `${data}-shm`]) rmSync(file, { force: true });
    fillDisk(filler);
    await expectOneLineExit2();
  }, 30_000);

  test("a start on a full disk with an existing data file prints one line and exits 2", async () => {
    rmSync(filler, { force: true });
    const server = await serve();
    expect(await server.stop("SIGTERM")).toBe(0);
    fillDisk(filler);
    await expectOneLineExit2();
  }, 30_000);
});
