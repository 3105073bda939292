// SIGTERM with --drain-delay while SSE browsers receive: what a stream sees, and whether /webtalk.js
// (transport "sse", in Chromium) and a plain EventSource-style client (Last-Event-ID) resume on the
// server restarted with the same --data, nothing lost or doubled. Messages are sent without pause
// through the drain; each acknowledged one must arrive exactly once, in order per source.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser as Chromium, Page } from "playwright-core";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ControlClient, newUser, WAIT_MS, within } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer, type Spawned } from "./process.ts";
import { eventsUrl, SseClient, type SseEvent } from "./sse-client.ts";

const skip = chromiumMissing();
const dir = mkdtempSync(join(tmpdir(), "webtalk-sse-drain-"));
let chromium: Chromium;

beforeAll(async () => {
  if (!skip) chromium = await launchChromium();
});

afterAll(async () => {
  if (!skip) await chromium.close();
  rmSync(dir, { recursive: true, force: true });
});

const flags = (data: string) => ["--data", data, "--drain-delay", "1", "--sessions", "4"];

/** Sends whisper/shout pairs one after another until the control connection stops answering; returns what was acknowledged. */
async function sendUntilClosed(ctl: ControlClient, user: number, channel: string, from: number, acked: { w: number[]; s: number[] }, stop: () => boolean) {
  for (let i = from; !stop(); i++) {
    const w = await ctl.call(`[whisper] ${user}!w${i}`).catch(() => undefined);
    if (w === undefined) return;
    if (w.startsWith("[ok]")) acked.w.push(i);
    const s = await ctl.call(`[shout] ${channel}!s${i}`).catch(() => undefined);
    if (s === undefined) return;
    if (s.startsWith("[ok]")) acked.s.push(i);
  }
}

/** `got` (per source, in arrival order) holds every acknowledged number once, in order, and nothing twice. */
function expectExactlyOnce(got: number[], acked: number[], what: string) {
  expect({ what, doubled: got.filter((n, i) => got.indexOf(n) !== i) }).toEqual({ what, doubled: [] });
  expect({ what, ordered: got.toSorted((a, b) => a - b) }).toEqual({ what, ordered: got });
  expect({ what, missing: acked.filter((n) => !got.includes(n)) }).toEqual({ what, missing: [] });
}

test.skipIf(Boolean(skip))("SIGTERM with --drain-delay, restart on the same --data: SSE pages resume exactly", async () => {
  const data = join(dir, "webtalk.db");
  let server: Spawned = await spawnServer(["bun", MAIN, ...LOOPBACK, ...flags(data)]);
  const port = new URL(server.publicUrl).port;
  let ctl = await ControlClient.connect(server.privatePort);
  let page: Page | undefined;
  try {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);

    const base = `http://127.0.0.1:${port}`;
    page = await (await chromium.newContext()).newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.goto(`${base}/webtalk.js`); // same origin as the server: no CORS in the way
    await page.evaluate(
      async ([base, token]) => {
        const { connect } = await import(`${base}/webtalk.js`);
        const w = globalThis as unknown as Record<string, unknown[]>;
        w.got = [];
        w.gaps = [];
        w.closes = [];
        (globalThis as Record<string, unknown>).connection = connect(`${base}/webtalk`, token, {
          transport: "sse",
          minDelay: 50,
          maxDelay: 500,
          onMessage: (text: string, at: { source: string; offset: number }) => w.got!.push(`${at.source}:${at.offset} ${text}`),
          onGap: (source: string) => w.gaps!.push(source),
          onClose: (info: { code: number; reason: string }) => w.closes!.push(`${info.code} ${info.reason}`),
        });
      },
      [base, user.token],
    );
    // An SSE page is admitted before its response starts: once open, a whisper reaches it.
    await page.waitForFunction(() => (globalThis as unknown as { connection?: { state: string } }).connection?.state === "open");
    const raw = await SseClient.open(eventsUrl(server.publicUrl, user.token));
    await raw.events.next("the raw stream's epoch");
    await ctl.ok(`[whisper] ${user.id}!w0`);
    await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.some((g) => g.endsWith(" w0")));

    // Traffic without pause; SIGTERM in the middle of it. The drain delay keeps the ports open 1 s.
    const acked = { w: [0], s: [] as number[] };
    let t0 = 0;
    // A backend that keeps sending keeps its control connection open to --shutdown-timeout: this one
    // stops half a second after the ports were to close, as one that watches /readyz would have.
    const sending = sendUntilClosed(ctl, user.id, channel, 1, acked, () => t0 > 0 && Date.now() - t0 > 1_500);
    while (acked.w.length < 20) await Bun.sleep(5);
    t0 = Date.now();
    server.proc.kill("SIGTERM");
    await within(sending, "the control port to close", 20_000);
    expect(await within(server.proc.exited, "the server to exit", 20_000)).toBe(0);
    const firstRun = { ...acked, w: [...acked.w], s: [...acked.s] };
    expect(firstRun.w.length).toBeGreaterThan(20);

    // What the plain stream saw at the end: a 1001 comment, no close event, then the end.
    const rawEvents = await raw.events.settled(100);
    const comments = await raw.comments.settled(50);
    expect(comments).toContain(" 1001 server shutting down");
    expect(rawEvents.filter((e) => e.type === "close")).toEqual([]);
    const rawGot: SseEvent[] = rawEvents.filter((e) => e.type === "message");

    // Restart on the same port and data file; more traffic.
    server = await spawnServer(["bun", MAIN, "--public", `127.0.0.1:${port}`, "--private", "127.0.0.1:0", ...flags(data)]);
    ctl.close();
    ctl = await ControlClient.connect(server.privatePort);
    // EventSource's own reconnect: the same URL with the last id.
    const again = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": raw.lastEventId });
    expect(again.response.status).toBe(200);
    const last = 1000;
    for (let i = last - 9; i <= last; i++) {
      expect(await ctl.ok(`[whisper] ${user.id}!w${i}`)).toBeDefined();
      acked.w.push(i);
      await ctl.ok(`[shout] ${channel}!s${i}`);
      acked.s.push(i);
    }
    await page.waitForFunction((t) => (globalThis as unknown as { got: string[] }).got.some((g) => g.endsWith(t)), ` s${last}`, { timeout: 20_000 });
    for (let e = await again.next("the resumed stream"); ; e = await again.next("the resumed stream")) {
      rawGot.push(e);
      if (e.data === `s${last}`) break;
    }

    // The page: every acknowledged message once, in order; offsets +1 per source (no onGap).
    const got = await page.evaluate(() => (globalThis as unknown as { got: string[] }).got);
    const gaps = await page.evaluate(() => (globalThis as unknown as { gaps: string[] }).gaps);
    const numbers = (texts: string[], prefix: string) => texts.filter((t) => t.startsWith(prefix)).map((t) => Number(t.slice(1)));
    const texts = got.map((g) => g.slice(g.indexOf(" ") + 1));
    expect(gaps).toEqual([]);
    expectExactlyOnce(numbers(texts, "w"), acked.w, "page whispers");
    expectExactlyOnce(numbers(texts, "s"), acked.s, "page shouts");
    // The plain client, resumed by Last-Event-ID: the same, and no gap event.
    expect(rawGot.filter((e) => e.type === "gap")).toEqual([]);
    const rawTexts = rawGot.filter((e) => e.type === "message").map((e) => e.data);
    expectExactlyOnce(numbers(rawTexts, "w"), acked.w.filter((n) => n > 0 || rawTexts.includes("w0")), "stream whispers");
    expectExactlyOnce(numbers(rawTexts, "s"), acked.s, "stream shouts");
    again.cut();
  } finally {
    await page?.context().close();
    ctl.close();
    await server.stop("SIGKILL");
  }
}, 90_000);
