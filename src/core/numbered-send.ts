/**
 * Numbers a message in its source's replay stream and sends it, as one atomic step. A cluster needs
 * it: numbered by one Redis call and published by another, two control connections (on one node or
 * two) can take offsets 5 and 6 and publish 6 first, and every node's browsers would see the source
 * out of order. A single process numbers and sends in the same turn of its event loop and does
 * without (the replay log numbers, the delivery sends).
 */
export interface NumberedSend {
  /**
   * Numbers the shout in the channel's stream and sends it to the channel's browsers on every node;
   * false (nothing numbered) when there is no such channel. Checked in the same step: one round trip.
   */
  shout(channel: number, message: string): Promise<boolean>;
  /**
   * Numbers the whisper in the user's stream and, when the user is online, sends it in the same step;
   * else holds it in that same step (at most `heldLimit` held), so a login that takes the held queue
   * either finds it there or has claimed the user before it was numbered and receives it live.
   * Undefined (nothing numbered) when there is no such user, checked in that same step.
   */
  whisper(user: number, message: string, heldLimit: number): Promise<WhisperOutcome | undefined>;
}

/** A numbered whisper: sent, or held (`dropped`: how many older held whispers it pushed out). */
export type WhisperOutcome = { held: false } | { held: true; dropped: number };
