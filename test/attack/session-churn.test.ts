// --sessions (issue 17) from outside: one user logging in thousands of tabs in a loop, never closing
// one itself, against --sessions 3. The server must close each oldest tab (4002), never hold more than
// three open for the user, and keep its RSS bounded: a replaced tab must leave nothing behind.

import { afterEach, expect, test } from "bun:test";
import { Browser, ControlClient, MB, newUser, report, RssSampler, scale, spawnTarget, type Spawned } from "./kit.ts";

let target: Spawned | undefined;
afterEach(async () => {
  await target?.stop("SIGKILL");
  target = undefined;
});

const TABS = scale(3_000, 20_000);
/** Logins in flight at once. */
const BATCH = 30;
const GROWTH_BOUND = 40 * MB;

function statsOf(reply: string): Record<string, number> {
  return Object.fromEntries(reply.slice(5).split(" ").map((kv) => [kv.split("=")[0]!, Number(kv.split("=")[1])]));
}

test(`${TABS} logins of one user with --sessions 3: never more than 3 open, RSS bounded`, async () => {
  target = await spawnTarget(["--sessions", "3", "--admin", "off"]);
  const ctl = await ControlClient.connect(target.privatePort);
  const user = await newUser(ctl);
  const open = new Set<Browser>();
  let replaced = 0;
  let otherCloses = 0;
  let mostSeen = 0;
  let logins = 0;

  const login = async (): Promise<void> => {
    const browser = await Browser.open(target!.publicUrl);
    open.add(browser);
    logins++;
    void browser.closed.then((info) => {
      open.delete(browser);
      if (info.code === 4002 && info.reason === "session limit: replaced by a newer login") replaced++;
      else otherCloses++;
    });
    browser.send(user.token);
  };

  // Warm up (JIT, tables at their working size) before the baseline.
  for (let i = 0; i < 100; i++) await login();
  await ctl.ok(`[whisper] ${user.id}!warm`);
  const sampler = new RssSampler(target.proc.pid);
  for (let done = 0; done < TABS; done += BATCH) {
    await Promise.all(Array.from({ length: BATCH }, login));
    // Traffic on the survivors, and the server's own count of this user's tabs, every batch.
    await ctl.ok(`[whisper] ${user.id}!batch-${done}`);
    const stats = statsOf(await ctl.call("[stats]"));
    mostSeen = Math.max(mostSeen, stats.sessions!);
    expect(stats.online).toBe(1);
  }
  // Every replaced tab hears its close; then exactly three remain, on both sides.
  const until = Date.now() + 30_000;
  while (open.size > 3 && Date.now() < until) await ctl.ok("[ping]");
  sampler.stop();
  const stats = statsOf(await ctl.call("[stats]"));
  report("session churn", {
    tabs: logins,
    replaced,
    other_closes: otherCloses,
    most_sessions_seen: mostSeen,
    rss_baseline_mb: (sampler.baseline / MB).toFixed(1),
    rss_growth_mb: (sampler.growth / MB).toFixed(1),
  });
  expect(mostSeen).toBeLessThanOrEqual(3);
  expect(stats.sessions).toBe(3);
  expect(open.size).toBe(3);
  expect(replaced).toBe(logins - 3);
  expect(otherCloses).toBe(0);
  expect(sampler.growth).toBeLessThan(GROWTH_BOUND);
  for (const browser of open) browser.close();
  ctl.close();
}, 300_000);
