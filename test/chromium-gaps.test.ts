// /webtalk.js in real Chromium against a scripted webtalk.v2 server: every offset that is not the last
// plus one (repeated, late, skipped ahead, in a whisper stream and a channel) is reported to onGap, the
// late and repeated ones are not delivered, and the resume login after the gap lists the positions it
// kept (the skipped-ahead offset), from which the next connection continues with no further gap.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ROOT } from "./process.ts";

const skip = chromiumMissing();
let chromium: Browser;
beforeAll(async () => {
  if (!skip) chromium = await launchChromium();
});
afterAll(async () => {
  if (!skip) await chromium.close();
});

const CLIENT = readFileSync(join(ROOT, "src/client/browser/webtalk.js"), "utf8");
const PAGE = `<!doctype html><script type="module">
  import { connect } from "/webtalk.js";
  window.got = []; window.gaps = [];
  window.conn = connect("/webtalk", "1!s", {
    minDelay: 50, maxDelay: 100,
    onMessage: (text, meta) => window.got.push(meta.source + ":" + meta.offset + "!" + text),
    onGap: (source) => window.gaps.push(source),
  });
</script>`;

describe.skipIf(Boolean(skip))("/webtalk.js offsets in Chromium", () => {
  test("each non-+1 offset goes to onGap; the resume after it lists the kept positions and continues", async () => {
    const scripts = [
      ["#epoch e1", "7:1!a", "7:2!b", "7:2!b again", "7:1!late", "7:5!ahead", "7:6!next", "u:1!w1", "u:3!w3", "u:2!w2 late", "u:4!w4"],
      ["#epoch e1", "7:7!after resume", "u:5!w5"],
    ];
    const logins: string[] = [];
    let connection = 0;
    const fake = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req, server) {
        const path = new URL(req.url).pathname;
        if (path === "/webtalk") {
          return server.upgrade(req, { headers: { "Sec-WebSocket-Protocol": "webtalk.v2" } }) ? undefined : new Response("no", { status: 400 });
        }
        if (path === "/webtalk.js") return new Response(CLIENT, { headers: { "content-type": "text/javascript" } });
        return new Response(PAGE, { headers: { "content-type": "text/html" } });
      },
      websocket: {
        message(ws, message) {
          logins.push(String(message));
          const frames = scripts[connection++] ?? [];
          for (const frame of frames) ws.send(frame);
          // The first connection ends as a network loss would (not a final code): the page resumes.
          if (connection === 1) setTimeout(() => ws.close(1001, "going away"), 200);
        },
      },
    });
    const context = await chromium.newContext();
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${fake.port}/`);
      await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.some((m) => m.endsWith("!w5")), undefined, { timeout: 10_000 });
      const got = await page.evaluate(() => (globalThis as unknown as { got: string[] }).got);
      const gaps = await page.evaluate(() => (globalThis as unknown as { gaps: string[] }).gaps);
      console.log(JSON.stringify({ got, gaps, logins }));
      expect(errors).toEqual([]);
      expect(got).toEqual(["7:1!a", "7:2!b", "7:5!ahead", "7:6!next", "u:1!w1", "u:3!w3", "u:4!w4", "7:7!after resume", "u:5!w5"]);
      // 7: 2 again, 1 after 2, 5 after 2; u: 3 after 1, 2 after 3. Nothing on the second connection.
      expect(gaps).toEqual(["7", "7", "7", "u", "u"]);
      expect(logins[0]).toBe("1!s");
      expect(logins[1]).toBe("1!s!e1!7:6,u:4");
    } finally {
      await context.close();
      fake.stop(true);
    }
  }, 30_000);
});
