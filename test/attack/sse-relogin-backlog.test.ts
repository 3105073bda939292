// One user's token logs in again and again over SSE, resuming from offset 0 of a 60 MB channel window,
// on streams that never read. Each newer login replaces the older stream; a replaced stream far behind
// keeps its close event behind its backlog (so a page that reads late hears 4002 as final and does not
// come back), which must not let such streams pile up: one per user waits, the next cuts it. Measured
// from outside: server RSS from /proc, a canary backend's and browser's latency.

import { expect, test } from "bun:test";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { canaryBackend, canaryBrowser, ControlClient, learnEpoch, MB, newUser, report, RssSampler, scale, spawnTarget } from "./kit.ts";
import { eventsUrl } from "../sse-client.ts";

const SHOUTS = 1_000;
const SHOUT_BYTES = 60_000;

test("re-logins over SSE replaying a 60 MB window on streams that never read keep RSS and latency bounded", async () => {
  const target = await spawnTarget(["--replay-bytes", String(512 * MB)]);
  const streams: Awaited<ReturnType<typeof Bun.connect>>[] = [];
  try {
    const ctl = await ControlClient.connect(target.privatePort);
    const user = await newUser(ctl);
    const epoch = await learnEpoch(target.publicUrl, user.token);
    const filler = "x".repeat(SHOUT_BYTES);
    for (let i = 0; i < SHOUTS; i += 100) {
      ctl.write(encodeFrames(Array.from({ length: 100 }, (_, j) => `[shout] 1!${i + j}:${filler}`)));
      await ctl.replies.take(100, "the shouts' replies", 30_000);
    }

    const rss = new RssSampler(target.proc.pid);
    const backend = await canaryBackend(target.privatePort);
    const browser = await canaryBrowser(target);
    const url = new URL(eventsUrl(target.publicUrl, user.token));
    const attackMs = scale(5_000, 10_000);
    const started = performance.now();
    let logins = 0;
    // Attackers at once, each logging in again as soon as its previous request is sent; the old streams
    // stay open and unread.
    const attacker = async () => {
      while (performance.now() - started < attackMs) {
        const stream = await Bun.connect({ hostname: "127.0.0.1", port: Number(url.port), socket: { data: (socket) => socket.pause() } });
        stream.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\nLast-Event-ID: ${epoch}!1:0\r\n\r\n`);
        streams.push(stream);
        logins++;
        await Bun.sleep(20);
      }
    };
    await Promise.all(Array.from({ length: scale(8, 20) }, attacker));
    const back = await backend.stop();
    const whispers = await browser.stop();
    rss.stop();
    report("sse-relogin-backlog", { logins, peakMB: rss.peak / MB, baselineMB: rss.baseline / MB, backend: back, browser: whispers });
    ctl.close();
    // Each stream holds at most the replay budget (1 MiB) unread; hundreds piling up would pass 600 MB.
    expect(rss.peak - rss.baseline).toBeLessThanOrEqual(300 * MB);
    expect(back.unanswered + whispers.unanswered).toBe(0);
    expect(back.p99).toBeLessThanOrEqual(1_000);
    expect(whispers.p99).toBeLessThanOrEqual(1_000);
  } finally {
    for (const stream of streams) stream.end();
    target.proc.kill("SIGKILL");
  }
}, 120_000);
