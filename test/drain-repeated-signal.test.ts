// cli.md: SIGINT or SIGTERM stops webtalk with exit 0, after --drain-delay, then a graceful shutdown.
// An operator repeats the signal during a drain (`docker stop` twice, Ctrl-C twice on `npm start`):
// the drain already under way must not restart, and the process must not die on the spot (exit 143:
// no 1001 for browsers, no answer to pending commands). Real server, real browser, real signals.

import { expect, test } from "bun:test";
import { ControlClient, loggedIn, within } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer } from "./process.ts";

test("SIGTERM, SIGINT, SIGTERM during --drain-delay: one drain, browsers get 1001, exit 0", async () => {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--admin", "off", "--drain-delay", "2"]);
  const ctl = await ControlClient.connect(server.privatePort);
  const [browser] = await loggedIn(server, ctl);
  server.proc.kill("SIGTERM");
  await Bun.sleep(300);
  server.proc.kill("SIGINT");
  await Bun.sleep(300);
  const code = await server.stop("SIGTERM");
  const close = await within(browser.closed, "the browser's close").catch(() => undefined);
  console.log(`exit ${code}, browser close ${JSON.stringify(close)}\n${server.output()}`);
  expect(server.output().match(/not ready; the ports close/g)).toHaveLength(1);
  expect(code).toBe(0);
  expect(close?.code).toBe(1001);
}, 30_000);
