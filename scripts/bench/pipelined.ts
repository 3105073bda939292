// Issue 15's control-connection figure: N shouts (or whispers) written on one control connection without
// waiting for any reply, then N replies awaited. Rate runs from the first write to the last reply; the
// browsers then count what they received, so a message dropped anywhere shows as lost.

import { frames } from "./control.ts";
import { wallUs } from "./browsers.ts";
import { sampleServer, takeSeq, untilDelivered, type Figures, type Session } from "./scenarios.ts";

export type BurstKind = "shout" | "whisper";
const CHANNEL = 1;
/** Frames per write: the kernel takes the rest as the server reads, nothing waits on a reply. */
const WRITE = 1_000;

/** Sends `count` commands of `kind` at once and waits for every reply and every delivery. */
export async function pipelinedBurst(session: Session, kind: BurstKind, count: number, ms = 180_000): Promise<Figures> {
  const { ctl, workers, target, users } = session;
  const first = takeSeq(kind === "shout" ? count : 0);
  await workers.expect(first);
  const repliesBefore = ctl.replies;
  const errorsBefore = ctl.errors;
  const s0 = sampleServer(target);
  const now = wallUs();
  for (let sent = 0; sent < count; sent += WRITE) {
    const batch = Math.min(WRITE, count - sent);
    const payloads: string[] = new Array(batch);
    for (let i = 0; i < batch; i++) {
      const n = sent + i;
      // Whispers go round-robin, so every browser is owed the same share.
      payloads[i] = kind === "shout" ? `[shout] ${CHANNEL}!${first + n} ${now}` : `[whisper] ${users[n % users.length]}!w${now}`;
    }
    ctl.write(frames(payloads));
  }
  await ctl.untilReplies(repliesBefore + count, ms);
  const replied = sampleServer(target);
  const expected = kind === "shout" ? count * users.length : count;
  const received = () => (kind === "shout" ? workers.progress().shouts : workers.progress().whispers);
  await untilDelivered(workers, received, expected);
  const { stats } = await workers.collect();
  const got = kind === "shout" ? stats.shouts : stats.whispers;
  return {
    messages: count,
    perSec: count / ((replied.at - s0.at) / 1000),
    lost: Math.max(0, expected - got),
    disorder: stats.disorder,
    errors: ctl.errors - errorsBefore,
  };
}
