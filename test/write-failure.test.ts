// When the data file cannot be written (a full disk), a command answers `[error]` naming the file,
// not `[ok]`, a login is refused instead of crashing the server, nothing is half-applied,
// and everything works again once there is room. The server's real parts, wired as server.ts wires
// them, over a SqliteState whose file is made to fail by SQLite itself.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExecutor } from "../src/core/executor.ts";
import { createLogin } from "../src/core/login.ts";
import { EventHub } from "../src/core/events.ts";
import { rejectingThrows } from "../src/core/maybe.ts";
import { MemoryReplay } from "../src/core/replay.ts";
import { Metrics } from "../src/observe/metrics.ts";
import { createLog } from "../src/observe/log.ts";
import { CloseCode } from "../src/protocol/codes.ts";
import { openDataFile } from "../src/state/sqlite-file.ts";
import { SqliteState } from "../src/state/sqlite.ts";
import { listenControl } from "../src/transport/control.ts";
import { servePublic } from "../src/transport/public.ts";
import { Browser, ControlClient, frame, newUser } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-write-failure-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a failed write is an [error] reply or a refused login, and the server carries on", async () => {
  const db = openDataFile(join(dir, "full.db"), { sync: "full" });
  const state = new SqliteState(db);
  const log = createLog("silent");
  const events = new EventHub();
  const metrics = new Metrics();
  const replay = new MemoryReplay({ count: 100, ageMs: 60_000, bytes: 1 << 20 });
  let login: ReturnType<typeof createLogin> = () => ({ ok: false, why: "unknown" });
  const pub = servePublic({
    hostname: "127.0.0.1",
    port: 0,
    path: "/webtalk",
    loginTimeoutMs: 5000,
    login: (t, v2) => login(t, v2),
    upstream: false,
    maxMessage: 4096,
    maxMessageRate: 100,
    backpressure: 1 << 20,
    rules: { origins: [], maxConnections: 100 },
    events,
    metrics,
    log,
  });
  const delivery = pub.delivery;
  login = rejectingThrows(createLogin({ state, delivery, replay, duplicate: "replace", heldLimit: 100 }));
  const counters = () => metrics.counters(0);
  const execute = rejectingThrows(createExecutor({ state, delivery, heldLimit: 100, replay, counters, secret: "", metrics, log }));
  const control = listenControl({
    hostname: "127.0.0.1",
    port: 0,
    execute,
    events,
    listenerBuffer: 1 << 20,
    authRequired: false,
    maxConnections: 10,
    authTimeoutMs: 5_000,
    frameTimeoutMs: 30_000,
    metrics,
    log,
  });
  const url = `ws://127.0.0.1:${pub.server.port}/webtalk`;
  try {
    const ctl = await ControlClient.connect(control.port);
    const user = await newUser(ctl);
    expect(await ctl.call(`[whisper] ${user.id}!held before`)).toBe("[ok] message queued");
    expect(await ctl.call("[store] kept!yes")).toBe("[ok] stored kept");

    // The disk is full: SQLite's page limit at the file's current size makes growing it fail.
    const { page_count } = db.query<{ page_count: number }, []>("PRAGMA page_count").get()!;
    db.run(`PRAGMA max_page_count = ${page_count}`);
    ctl.write(new Uint8Array([...frame("[retrieve] kept"), ...frame(`[store] big!${"x".repeat(90_000)}`), ...frame("[retrieve] kept")]));
    const file = join(dir, "full.db");
    expect(await ctl.replies.take(3)).toEqual([
      "[ok] yes",
      `[error] data file ${file}: write failed, nothing was changed (database or disk is full)`,
      "[ok] yes",
    ]);
    expect(await ctl.call("[retrieve] big")).toBe("[ok] ");

    // Taking the held messages at login fails: the login is refused with "try again later" (never the
    // final 4001: the token is good, the page must retry), the messages stay held.
    db.run("CREATE TEMP TRIGGER fail BEFORE DELETE ON held BEGIN SELECT RAISE(ABORT, 'simulated I/O error'); END");
    const refused = await Browser.open(url);
    refused.send(user.token);
    expect((await refused.closedWithin()).code).toBe(CloseCode.tryAgainLater.code);

    // Room again: the same connection and the same credentials work, nothing was lost.
    db.run("DROP TRIGGER fail");
    db.run("PRAGMA max_page_count = 1073741823");
    expect(await ctl.call(`[store] big!${"x".repeat(90_000)}`)).toBe("[ok] stored big");
    const browser = await Browser.open(url);
    browser.send(user.token);
    expect(await browser.messages.next()).toBe("held before");
    browser.close();
    ctl.close();
  } finally {
    await control.stop(Date.now());
    await pub.stop(CloseCode.shuttingDown, Date.now());
    state.close();
  }
});
