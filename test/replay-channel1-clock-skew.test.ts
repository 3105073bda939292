// README webtalk.v2 / issue 14: a v2 resume never replays a channel message sent while the user was not
// a member. On channel 1 the "floor" is the user's ID millisecond (bornMs): in a cluster the ID comes
// from Redis's clock (TIME), but each channel-1 window entry is stamped with the sending node's
// Date.now(). A node whose clock runs ahead of Redis's (here 3 s, with bun:test's setSystemTime on the node's process, which also stops it; NTP-disciplined machines differ by
// milliseconds, VMs after a pause by seconds) stamps a shout sent BEFORE the user existed with a time
// after the user's ID, and a resume from 1:0 replays it to the new user.

import { afterAll, beforeAll, expect, setSystemTime, test } from "bun:test";
import { createConsola } from "consola";
import { Browser, ControlClient, defaultConfig, newUser } from "./helpers.ts";
import { haveRedis, startRedis, type TestRedis } from "./redis-server.ts";
import { startServer } from "../src/server.ts";

let redis: TestRedis | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  setSystemTime();
  await redis?.stop();
});

test.skipIf(!haveRedis)("a channel-1 shout sent before a user existed is not replayed to it when the node's clock is ahead of Redis's", async () => {
  const server = await startServer(defaultConfig({ redis: redis!.url, redisPrefix: `skew${process.pid}:` }), createConsola({ level: 0 }));
  const ctl = await ControlClient.connect(server.private.port);
  try {
    // This node's clock (Date, which stamps the window entries) 3 s ahead of Redis's (which issues IDs).
    setSystemTime(new Date(Date.now() + 3_000));
    expect(await ctl.call("[shout] 1!BEFORE-THE-USER-EXISTED")).toStartWith("[ok]");
    await Bun.sleep(20);
    const user = await newUser(ctl);
    const page = await Browser.open(server.publicUrl, "webtalk.v2");
    page.send(user.token);
    const epoch = (await page.messages.next("the epoch")).slice("#epoch ".length);
    page.close();

    const resumed = await Browser.open(server.publicUrl, "webtalk.v2");
    resumed.send(`${user.token}!${epoch}!1:0`);
    const seen: string[] = [];
    resumed.ws.addEventListener("message", (event) => seen.push(String(event.data)));
    await Bun.sleep(500);
    resumed.close();
    expect(seen.filter((m) => m.includes("BEFORE-THE-USER-EXISTED"))).toEqual([]);
  } finally {
    setSystemTime();
    ctl.close();
    await server.stop();
  }
}, 30_000);
