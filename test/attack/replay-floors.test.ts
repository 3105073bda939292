// Replay floors (issue 14): every [join] that adds a member to a channel with history keeps a floor, so
// a resume never reaches back to before the membership. That memory must stay bounded by the
// memberships that exist now, whatever a backend churns through: a backend that keeps making channels,
// filling them, emptying them ([leave]), killing them ([killchannel]) and users ([killuser]) must not
// grow the server. Measured from outside: server RSS from /proc after warm-up and after the churn, and
// a canary backend's [ping] latency meanwhile.

import { expect, test } from "bun:test";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { canaryBackend, ControlClient, createUsers, MB, report, RssSampler, scale, spawnTarget } from "./kit.ts";

const MEMBERS = 2_000;
const GUESTS = 200;
const WARMUP = 20;
const ROUNDS = scale(200, 1_000);

test("replay floors stay bounded while a backend churns channels, memberships and users", async () => {
  const target = await spawnTarget();
  const ctl = await ControlClient.connect(target.privatePort);
  try {
    const members = await createUsers(ctl, MEMBERS);
    const round = async () => {
      const channel = Number(await ctl.ok("[newchannel]"));
      await ctl.ok(`[shout] ${channel}!before`); // history: each join below records a floor
      const guests = await createUsers(ctl, GUESTS);
      await pipeline(ctl, [...members, ...guests].map((id) => `[join] ${channel}!${id}`));
      await ctl.ok(`[shout] ${channel}!during`);
      await pipeline(ctl, members.slice(0, MEMBERS / 2).map((id) => `[leave] ${channel}!${id}`));
      await pipeline(ctl, guests.map((id) => `[killuser] ${id}`));
      await ctl.ok(`[killchannel] ${channel}`);
    };
    for (let i = 0; i < WARMUP; i++) await round();
    const rss = new RssSampler(target.proc.pid);
    const canary = await canaryBackend(target.privatePort, { everyMs: 10 });
    for (let i = 0; i < ROUNDS; i++) await round();
    const ping = await canary.stop();
    await Bun.sleep(500);
    const settled = rss.sample() - rss.baseline;
    rss.stop();
    const floors = ROUNDS * (MEMBERS + GUESTS);
    report("replay-floors", { rounds: ROUNDS, floors_made: floors, settled_growth_mb: settled / MB, peak_growth_mb: rss.growth / MB, ping });
    // Kept instead of forgotten, the floors made here (440,000 in the short form) would stay in memory.
    expect(settled).toBeLessThan(16 * MB);
    expect(ping.unanswered).toBe(0);
  } finally {
    ctl.close();
    await target.stop().catch(() => target.proc.kill("SIGKILL"));
  }
}, 180_000);

/** Sends the commands in one write and waits for every reply, each an `[ok]`. */
async function pipeline(ctl: ControlClient, commands: string[]): Promise<void> {
  ctl.write(encodeFrames(commands));
  const replies = await ctl.replies.take(commands.length, "pipelined replies", 30_000);
  const bad = replies.find((reply) => !reply.startsWith("[ok]"));
  if (bad !== undefined) throw new Error(`a pipelined command answered ${bad}`);
}
