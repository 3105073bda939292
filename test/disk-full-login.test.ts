// Breaker test (issue 14, "no surprise"): a --data disk that fills up must not stop a legitimate page
// for good. A browser with a valid token whose login cannot take its held whispers (the write fails)
// was closed with 4001 "login failed", a FINAL code: /webtalk.js stops and never reconnects, so the
// page stays dead after the disk has room again. A transient server-side failure is 1013 (try again
// later), as for a server still starting or a Redis that is away. End to end on a real 2 MB tmpfs.

import { describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { MAIN, LOOPBACK } from "./process.ts";
import { spawnPerTest } from "./spawn-per-test.ts";
import { fillDisk, mountSmallDisk } from "./small-disk.ts";

const { dir, problem: mountProblem } = mountSmallDisk("webtalk-disk-full-login-", "disk-full login test");

const spawnServer = spawnPerTest(); // ended before the umount
const data = join(dir, "webtalk.db");
const filler = join(dir, "filler");

describe.skipIf(!!mountProblem)("--data on a full disk, a login", () => {
  test("with held whispers is told to try again later (not the final 4001), and gets them once there is room", async () => {
    const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data], {
      env: { PATH: process.env.PATH ?? "", HOME: dir },
      cwd: dir,
    });
    const ctl = await ControlClient.connect(server.privatePort);
    const alice = await newUser(ctl);
    expect(await ctl.call(`[whisper] ${alice.id}!held for alice`)).toBe("[ok] message queued");

    fillDisk(filler);
    // Fill what room the WAL has left too, so the login's write cannot fit.
    for (let i = 0; i < 40; i++) if ((await ctl.call(`[store] big${i}!${"x".repeat(90_000)}`)).startsWith("[error]")) break;

    const page = await Browser.open(server.publicUrl);
    page.send(alice.token);
    const first = await Promise.race([page.closed, page.messages.next("a message or a close")]);
    page.close();
    expect(first, "the login on the full disk").toEqual({ code: 1013, reason: "backend unavailable" });

    // Room again: the page retries and gets the whisper that stayed held.
    rmSync(filler);
    const again = await Browser.open(server.publicUrl);
    again.send(alice.token);
    expect(await again.messages.next("the held whisper")).toBe("held for alice");
    again.close();
    ctl.close();
  }, 30_000);
});
