// What replays may send to one user is bounded (src/core/replay-rate.ts): 16 MiB at once, refilling
// 8 MiB a second. Past it the user's next resume login is closed with 1013 "resuming too often" (not
// final: the page backs off and resumes); a fresh login (no positions) is never limited, nor is
// another user, and the bucket refills.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer, type User } from "./helpers.ts";

const WHISPERS = 40;
const TEXT = "w".repeat(60_000);

let server: Webtalk;
let ctl: ControlClient;

beforeAll(async () => {
  server = await startTestServer();
  ctl = await ControlClient.connect(server.private.port);
});

afterAll(async () => {
  ctl.close();
  await server.stop();
});

/** A webtalk.v2 login, resuming from whisper offset 0 when `epoch` is given: its first message, or its close. */
async function login(user: User, epoch?: string): Promise<{ browser: Browser; first: string }> {
  const browser = await Browser.open(server.publicUrl, "webtalk.v2");
  browser.send(epoch ? `${user.token}!${epoch}!u:0` : user.token);
  const first = await Promise.race([
    browser.messages.next("the epoch"),
    browser.closedWithin().then((close) => `closed ${close.code} ${close.reason}`),
  ]);
  return { browser, first };
}

test("resumes that replay more than 16 MiB at once are refused 1013 for now; fresh logins and other users are not", async () => {
  const [user, other] = [await newUser(ctl), await newUser(ctl)];
  ctl.write(encodeFrames(Array.from({ length: WHISPERS }, (_, i) => `[whisper] ${user.id}!${i + 1} ${TEXT}`)));
  await ctl.replies.take(WHISPERS, "the whispers' replies", 30_000);
  const fresh = await login(user);
  const epoch = fresh.first.slice("#epoch ".length);
  await fresh.browser.messages.take(WHISPERS, "the held whispers", 30_000);
  fresh.browser.close();
  // Each resume from u:0 replays 2.4 MB, read whole; until one is refused, at most 100.
  const firsts: string[] = [];
  while (firsts.length < 100 && !firsts.at(-1)?.startsWith("closed")) {
    const attempt = await login(user, epoch);
    firsts.push(attempt.first);
    if (attempt.first.startsWith("#epoch ")) await attempt.browser.messages.take(WHISPERS, "the replay", 30_000);
    attempt.browser.close();
  }
  expect(firsts.length).toBeGreaterThanOrEqual(6);
  expect(firsts.slice(0, -1).every((first) => first.startsWith("#epoch "))).toBe(true);
  expect(firsts.at(-1)).toBe("closed 1013 resuming too often: try again later");
  // A fresh login of the same user, and another user's resume, go in.
  const again = await login(user);
  expect(again.first).toStartWith("#epoch ");
  again.browser.close();
  const theirs = await login(other, epoch);
  expect(theirs.first).toStartWith("#epoch ");
  theirs.browser.close();
  // The bucket refills: a later resume goes in and replays from the start.
  await Bun.sleep(1_000);
  const later = await login(user, epoch);
  expect(later.first).toStartWith("#epoch ");
  expect(await later.browser.messages.next("the first replayed whisper")).toBe(`u:1!1 ${TEXT}`);
  later.browser.close();
});
