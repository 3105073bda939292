// Redis full: the required maxmemory-policy noeviction, and maxmemory reached (a Redis sized too
// small, or filled by another deployment sharing it). Writes fail with Redis's OOM error. A browser
// whose token is valid must not be told 4001 (login failed), which /webtalk.js treats as final and
// never retries: it is a transient failure of the backend, 1013 (try again later), as while Redis is
// unreachable.

import { expect, test } from "bun:test";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { spawnNode } from "./cluster-kit.ts";
import { haveRedis, link, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis({ args: ["--maxmemory-policy", "noeviction"] });

test.skipIf(!haveRedis)("a valid login while Redis is full (noeviction, maxmemory reached) is closed 1013, never the final 4001", async () => {
  const prefix = uniquePrefix("full");
  const server = await spawnNode(redis, prefix, 3);
  const l = await link(redis);
  const ctl = await ControlClient.connect(server.privatePort);
  try {
    const user = await newUser(ctl);
    const info = String(await l.call("INFO", ["memory"]));
    const used = Number(/used_memory:(\d+)/.exec(info)![1]);
    await l.call("CONFIG", ["SET", "maxmemory", String(used + 200_000)]);
    let reply = "";
    for (let i = 0; i < 2_000 && (reply === "" || reply.startsWith("[ok]")); i++) reply = await ctl.call(`[store] fill${i}!${"v".repeat(4_000)}`);
    expect(reply).toStartWith("[error]"); // Redis is full

    const page = await Browser.open(server.publicUrl);
    page.send(user.token);
    const closed = await page.closedWithin("the login to be refused");
    expect(closed.code).toBe(1013);
  } finally {
    await l.call("CONFIG", ["SET", "maxmemory", "0"]).catch(() => undefined);
    l.close();
    ctl.close();
    await server.stop("SIGKILL");
  }
}, 60_000);
