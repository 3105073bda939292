// Breaker test (issue 14 item 7, "held whispers at login"; README: "held whispers come back at login in
// offset order", "nothing lost"). In a cluster a whisper is numbered by one Redis script that finds its
// user offline, and the node then holds it with a second command. Two nodes as real processes: node 0
// busy with twelve control connections pipelining whispers to one user (and shouts), the user's
// webtalk.v2 page logging in on idle node 1 in the middle. When the login claims the user and takes
// the held queue between a whisper's script and its hold, that whisper (answered "[ok] message queued")
// is not in what the login took, the next whispers go out live with later offsets, and the page sees
// its offsets skip (e.g. 18->25) while the skipped whispers stay held, for good on a resume login that
// lists "u" (the window replaces the held queue and the position is already past them).
// Seen: 2-3 of 12 rounds per run, 1 to 11 of 360 whispers missing from the session.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { endCluster, OffsetPage, offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("held whispers at a login on an idle node while a busy node whispers", () => {
  test("each v2 page gets its whisper offsets 1..N once, +1, all within its session", async () => {
    const nodes = await spawnCluster(redis, uniquePrefix("held"), 2);
    const ctls = await Promise.all(Array.from({ length: 12 }, () => ControlClient.connect(nodes[0]!.privatePort)));
    const pages: OffsetPage[] = [];
    const problems: string[] = [];
    const queued: number[] = [];
    try {
      const per = 60;
      for (let round = 0; round < 12; round++) {
        const user: User = await newUser(ctls[0]!);
        const page = new OffsetPage(await Browser.open(nodes[1]!.publicUrl, "webtalk.v2"));
        pages.push(page);
        const sent = ctls.map((ctl, n) => {
          // Whispers to the user interleaved with shouts to channel 1 (every user is in it): load on node 0.
          const frames = Array.from({ length: per }, (_, i) => (i % 2 ? `[shout] 1!load${n}-${i}` : `[whisper] ${user.id}!w${n}-${i}`));
          ctl.write(encodeFrames(frames));
          return ctl.replies.take(per, "the replies", 40_000);
        });
        await Bun.sleep(5 + (round % 4) * 5);
        page.browser.send(user.token);
        const replies = (await Promise.all(sent)).flat();
        queued.push(replies.filter((r) => r === "[ok] message queued").length);
        const whispers = (ctls.length * per) / 2;
        for (let i = 0; i < 200 && (page.offsets.get("u") ?? []).length < whispers; i++) await Bun.sleep(10);
        const got = page.offsets.get("u") ?? [];
        const steps = offsetSkips(got);
        if (got.length !== whispers || steps.length || got[0] !== 1) problems.push(`round ${round}: ${got.length}/${whispers} whispers, first ${got[0]}, not +1: ${steps.slice(0, 5).join(" ")}`);
        page.browser.close();
      }
      console.log(`queued per round: ${queued.join(" ")}\n${problems.join("\n")}`);
      expect(problems).toEqual([]);
    } finally {
      await endCluster({ pages, ctls, nodes });
    }
  }, 60_000);
});
