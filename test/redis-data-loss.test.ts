// Issue 14 item 2: Redis loses webtalk's data under two live nodes (restarted empty, or FLUSHALL).
// No old ID may be handed out again, no whisper may reach the old user's browser, channel 1 must
// exist again, and each node says so once in its log.

import { expect, test } from "bun:test";
import { Browser, loggedIn, newUser, within, ControlClient } from "./helpers.ts";
import { haveRedis, link, useRedis, uniquePrefix } from "./redis-server.ts";
import { startRedisNode } from "./redis-node.ts";

const redis = useRedis();

/** `[newuser]` until it succeeds (it is refused while the node re-establishes the state); its token. */
function newToken(ctl: ControlClient): Promise<string> {
  return within(
    (async () => {
      for (;;) {
        const reply = await ctl.call("[newuser]");
        if (reply.startsWith("[ok] ")) return reply.slice(5);
        await Bun.sleep(50);
      }
    })(),
    "[newuser] to succeed after the data loss",
    15_000,
  );
}

/** The replay epoch a v2 browser is told at login. */
async function epochOf(url: string, token: string, positions = ""): Promise<string[]> {
  const page = await Browser.open(url, "webtalk.v2");
  page.send(positions ? `${token}!${positions}` : token);
  const first = await page.messages.next("the epoch notice");
  const rest = positions ? [await page.messages.next("what follows the epoch")] : [];
  page.close();
  return [first, ...rest];
}

/** Waits for an event line on a listening connection. */
async function event(ctl: ControlClient, pattern: RegExp): Promise<string> {
  for (;;) {
    const line = await ctl.replies.next("an event", 15_000);
    if (pattern.test(line)) return line;
  }
}

/** The generation webtalk wrote under `prefix`: the state's epoch. */
async function generation(prefix: string): Promise<string> {
  const l = await link(redis);
  try {
    return String(await l.call("GET", [`${prefix}generation`]));
  } finally {
    l.close();
  }
}

async function lose(how: "restart" | "flushall"): Promise<void> {
  if (how === "restart") {
    await redis.stop();
    await redis.restart();
    return;
  }
  const l = await link(redis);
  await l.call("FLUSHALL", []);
  l.close();
}

for (const how of ["restart", "flushall"] as const) {
  test.skipIf(!haveRedis)(`after Redis lost its data (${how}) no old ID, no whisper to the old browser, channel 1 back`, async () => {
    const prefix = uniquePrefix("loss");
    const a = await startRedisNode(redis, prefix);
    const b = await startRedisNode(redis, prefix);
    try {
      const old = await newUser(a.ctl);
      const earlier = await newUser(b.ctl);
      const [browser] = await loggedIn(a.server, a.ctl, old);
      const messages: string[] = [];
      browser.ws.addEventListener("message", (event) => messages.push(String(event.data)));
      const oldEpoch = (await epochOf(b.server.publicUrl, earlier.token))[0]!.slice("#epoch ".length);
      const oldGeneration = await generation(prefix);
      const listener = await ControlClient.connect(a.server.private.port);
      expect(await listener.call("[listen]")).toStartWith("[ok]");

      await lose(how);

      // Both nodes, in turn: neither may hand out an ID issued before the loss.
      const tokens = [await newToken(b.ctl), await newToken(a.ctl)];
      const ids = tokens.map((token) => Number(token.split("!")[0]));
      for (const id of ids) {
        expect(id).not.toBe(old.id);
        expect(id).not.toBe(earlier.id);
        expect(id).toBeGreaterThan(Math.max(old.id, earlier.id));
      }
      const closed = await browser.closedWithin("the old user's browser to be closed");
      expect(closed.code).toBe(4004);
      for (const ctl of [a.ctl, b.ctl]) {
        expect(await ctl.call(`[whisper] ${old.id}!PRIVATE`)).toStartWith("[error]");
        expect(await ctl.call("[shout] 1!after the loss")).toStartWith("[ok]");
      }
      expect(messages.filter((m) => m.includes("PRIVATE"))).toEqual([]);
      // Listeners hear the new epoch; channel 1's offsets started again, so a v2 page that resumes
      // with the old epoch is told of a gap, never replayed offsets it already had.
      const announced = await event(listener, new RegExp(`^\\[epoch\\] (?!${oldGeneration}$)`));
      expect(announced).toBe(`[epoch] ${await generation(prefix)}`);
      listener.close();
      for (const n of [a, b]) {
        const [notice, next] = await epochOf(n.server.publicUrl, tokens[0]!, `${oldEpoch}!1:0`);
        expect(notice).not.toBe(`#epoch ${oldEpoch}`);
        expect(next).toBe("#gap 1");
      }
      // Each node logs the loss once (what happened, how many browsers it closed).
      await within(
        (async () => {
          while (a.errors.length === 0 || b.errors.length === 0) await Bun.sleep(50);
        })(),
        "both nodes to log the data loss",
        10_000,
      );
      await Bun.sleep(1_000); // a few more periodic checks: still one line each
      for (const n of [a, b]) {
        const lost = n.errors.filter((line) => /lost webtalk's data/.test(line));
        expect(lost).toHaveLength(1);
      }
      expect(a.errors.find((l) => /lost/.test(l))).toMatch(/closed 1 browser/);
      expect(b.errors.find((l) => /lost/.test(l))).toMatch(/closed 0 browser/);
    } finally {
      for (const n of [a, b]) {
        n.ctl.close();
        await n.server.stop();
      }
    }
  }, 60_000);
}
