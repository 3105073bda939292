// Breaker test (README "webtalk.v2": "a listed whisper stream replaces the held queue (the window
// holds all it had)"; "Durable state": held whispers survive any stop). With --data, whispers to a user
// whose page is away are held in the data file and answered "[ok] message queued". After a crash
// (kill -9) the replay log starts a new epoch, so the page's resume login (which lists "u", as
// /webtalk.js does once it has had a whisper) is a #gap for "u" and the held queue is dropped: the
// held whispers, which webtalk still had, never reach the page, and a later login gets none either.
// The same happens without a crash once the held whispers are older than --replay-age.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { replayEpoch } from "./epochs.ts";
import { MAIN, LOOPBACK, spawnServer, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-held-v2-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Everything the page receives within `ms`. */
async function drain(page: Browser, ms: number): Promise<string[]> {
  const got: string[] = [];
  const end = Date.now() + ms;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) return got;
    const next = await Promise.race([page.messages.next("a message"), Bun.sleep(left).then(() => undefined)]).catch(() => undefined);
    if (next === undefined) return got;
    got.push(next);
  }
}

for (const [what, extra, stop] of [
  ["after a crash (kill -9)", [], "SIGKILL"],
  ["held longer than --replay-age", ["--replay-age", "1"], undefined],
] as const) {
  test(`held whispers reach a v2 page that resumes listing "u" ${what} (or at least a later login)`, async () => {
    const data = join(dir, `${stop ?? "age"}.db`);
    const args = ["bun", MAIN, ...LOOPBACK, "--data", data, ...extra];
    let server: Spawned = await spawnServer(args);
    let ctl = await ControlClient.connect(server.privatePort);
    const user = await newUser(ctl);
    let page = await Browser.open(server.publicUrl, "webtalk.v2");
    page.send(user.token);
    const epoch = await replayEpoch(page);
    expect(await ctl.call(`[whisper] ${user.id}!seen`)).toBe("[ok] message sent");
    expect(await page.messages.next("the first whisper")).toBe("u:1!seen");
    page.close();
    await page.closed;
    for (let i = 0; i < 50 && (await ctl.call(`[online] ${user.id}`)) !== "[ok] 0"; i++) await Bun.sleep(20);
    expect(await ctl.call(`[whisper] ${user.id}!held private data`)).toBe("[ok] message queued");
    ctl.close();
    try {
      if (stop) {
        await server.stop(stop);
        server = await spawnServer(args);
      } else {
        await Bun.sleep(1500);
      }
      // The page comes back with what it saw, as /webtalk.js does.
      page = await Browser.open(server.publicUrl, "webtalk.v2");
      page.send(`${user.token}!${epoch}!u:1`);
      const resumed = await drain(page, 1000);
      page.close();
      await page.closed;
      // And once more, plainly: whatever is still held arrives now.
      ctl = await ControlClient.connect(server.privatePort);
      for (let i = 0; i < 50 && (await ctl.call(`[online] ${user.id}`)) !== "[ok] 0"; i++) await Bun.sleep(20);
      ctl.close();
      page = await Browser.open(server.publicUrl);
      page.send(user.token);
      const later = await drain(page, 700);
      page.close();
      console.log(`${what}: resume got ${JSON.stringify(resumed)}; a later v1 login got ${JSON.stringify(later)}`);
      expect([...resumed, ...later].some((m) => m.endsWith("held private data"))).toBe(true);
    } finally {
      await server.stop("SIGKILL");
    }
  }, 30_000);
}
