// The soak's oracle, pure: what each user should have received, against what its browsers did receive.

/** A message is `BACKEND:SEQ`, sometimes padded after a space; its key orders it per sender. */
export function messageText(backend: number, seq: number, padding: number): string {
  return padding > 0 ? `${backend}:${seq} ${"p".repeat(padding)}` : `${backend}:${seq}`;
}

const SENDER = 1e9;

export function messageKey(backend: number, seq: number): number {
  return backend * SENDER + seq;
}

/** The key of a received text, or undefined when it is not one of ours. */
export function parseKey(text: string): number | undefined {
  const match = /^(\d{1,6}):(\d{1,9})(?: p*)?$/.exec(text);
  return match ? messageKey(Number(match[1]), Number(match[2])) : undefined;
}

export function describeKey(key: number): string {
  return `${Math.floor(key / SENDER)}:${key % SENDER}`;
}

/** One browser session of a user, as its worker reported it. */
export interface ReceivedSession {
  id: number;
  /** Keys in arrival order. */
  keys: number[];
  /** The browser closed this session itself: what the server sent after its last arrival may be lost in flight. */
  closedByClient: boolean;
}

/** A message the oracle expects, and the session it must arrive in. */
export interface Expected {
  key: number;
  session: number;
}

export interface Verdict {
  expected: number;
  received: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  misdelivered: number;
  /** Expected but sent after the last arrival of a session its browser closed itself: allowed to be missing. */
  inFlight: number;
  examples: string[];
}

export function emptyVerdict(): Verdict {
  return { expected: 0, received: 0, lost: 0, duplicated: 0, outOfOrder: 0, misdelivered: 0, inFlight: 0, examples: [] };
}

/**
 * Compares one user's expected messages (in the order the commands ran) with its sessions' arrivals (in
 * session order), adding to `verdict`. Every expected message must arrive once, in the session it was
 * meant for, in order per sender; nothing else may arrive.
 */
export function verifyUser(user: number, expected: Expected[], sessions: ReceivedSession[], verdict: Verdict): void {
  const meant = new Map<number, number>();
  for (const e of expected) meant.set(e.key, e.session);
  const seen = new Set<number>();
  const lastBySender = new Map<number, number>();
  const lastInSession = new Map<number, number>();
  const example = (text: string) => verdict.examples.length < 10 && verdict.examples.push(`user ${user}: ${text}`);
  verdict.expected += expected.length;
  for (const session of sessions) {
    for (const key of session.keys) {
      verdict.received++;
      const sender = Math.floor(key / SENDER);
      if (meant.get(key) !== session.id) {
        verdict.misdelivered++;
        example(`${describeKey(key)} arrived in session ${session.id}, meant for ${meant.get(key) ?? "nobody"}`);
      } else if (seen.has(key)) {
        verdict.duplicated++;
        example(`${describeKey(key)} arrived twice`);
      } else {
        if (key < (lastBySender.get(sender) ?? 0)) {
          verdict.outOfOrder++;
          example(`${describeKey(key)} arrived after ${describeKey(lastBySender.get(sender)!)}`);
        }
        seen.add(key);
        lastBySender.set(sender, Math.max(key, lastBySender.get(sender) ?? 0));
        lastInSession.set(session.id, Math.max(key, lastInSession.get(session.id) ?? 0));
      }
    }
  }
  const closedByClient = new Set(sessions.filter((s) => s.closedByClient).map((s) => s.id));
  for (const e of expected) {
    if (seen.has(e.key)) continue;
    if (closedByClient.has(e.session) && e.key > (lastInSession.get(e.session) ?? 0)) verdict.inFlight++;
    else {
      verdict.lost++;
      example(`${describeKey(e.key)} never arrived in session ${e.session}`);
    }
  }
}
