// Issue 14, item 5: while the server starts (its state not open yet), the public port already accepts
// browsers; a login then must hear "try again later" (1013, not final), never 4001 (final: the page
// would stop for good). A Redis that accepts connections and never answers keeps the start pending.

import { expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { Browser, within } from "./helpers.ts";
import { MAIN, runToExit } from "./process.ts";

test("a login during startup is told to try again later (1013), never refused for good (4001)", async () => {
  const blackHole: TCPSocketListener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const publicPort = probe.port;
  probe.stop(true);
  try {
    const server = runToExit(
      ["bun", MAIN, "--public", `127.0.0.1:${publicPort}`, "--private", "127.0.0.1:0", "--admin", "off", "--redis", `redis://127.0.0.1:${blackHole.port}`],
      { timeoutMs: 15_000 },
    );
    const url = `ws://127.0.0.1:${publicPort}/webtalk`;
    let browser: Browser | undefined;
    for (let tries = 0; browser === undefined && tries < 100; tries++) {
      browser = await Browser.open(url).catch(() => undefined);
      if (browser === undefined) await Bun.sleep(10);
    }
    expect(browser).toBeDefined();
    browser!.send("1!any-salt-at-all");
    const closed = await within(browser!.closed, "the login's answer", 5_000);
    expect(closed.code).toBe(1013);
    // Redis never answered: the start fails as before, with one line and no stack trace.
    const exit = await server;
    expect(exit.code).not.toBe(0);
  } finally {
    blackHole.stop(true);
  }
}, 30_000);
