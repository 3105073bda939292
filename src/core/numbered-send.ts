/**
 * Numbers a message in its source's replay stream and sends it, as one atomic step. A cluster needs
 * it: numbered by one Redis call and published by another, two control connections (on one node or
 * two) can take offsets 5 and 6 and publish 6 first, and every node's browsers would see the source
 * out of order. A single process numbers and sends in the same turn of its event loop and does
 * without (the replay log numbers, the delivery sends).
 */
export interface NumberedSend {
  /** Numbers the shout in the channel's stream and sends it to the channel's browsers on every node. */
  shout(channel: number, message: string): Promise<void>;
  /**
   * Numbers the whisper in the user's stream and, when the user is online, sends it in the same step.
   * Returns its offset, negated when the user was offline and nothing was sent: the caller holds it.
   */
  whisper(user: number, message: string): Promise<number>;
}
