// What the hostile clients aim at, and what they report back.

export interface FuzzTarget {
  privatePort: number;
  publicPort: number;
  /** ws://127.0.0.1:PORT/webtalk */
  publicUrl: string;
  path: string;
  /** Users made for the fuzz: hostile backends may whisper to, kick or kill them; their tokens log in. */
  users: number[];
  tokens: string[];
  /** Users killed at setup: every command naming them is an `[error] no such user`. */
  deadUsers: number[];
  channels: number[];
  /** The well-behaved users' IDs, for logins with a wrong salt (which must not disturb them). */
  goodUsers: number[];
  /** The server's webtalk.v2 epoch, so resume logins reach the replay window. */
  epoch: string;
  /**
   * False when `bytes` could name the well-behaved user or channel (their ID appears in them anywhere,
   * as a prefix or after a desynchronised header too): such input is skipped, since killing or kicking
   * that user would be a correct answer, not a server fault.
   */
  guard(bytes: Uint8Array): boolean;
}

/** Counts and protocol violations, shared by every hostile client of one run. */
export class Tally {
  connections = 0;
  replies = 0;
  guarded = 0;
  readonly scenarios = new Map<string, number>();
  readonly violations: string[] = [];

  count(name: string): void {
    this.scenarios.set(name, (this.scenarios.get(name) ?? 0) + 1);
  }

  violation(text: string): void {
    if (this.violations.length < 50) this.violations.push(text);
  }
}

/** A guard that refuses any byte string containing one of `ids` in decimal. */
export function createGuard(ids: number[], tally: Tally): (bytes: Uint8Array) => boolean {
  const needles = ids.map((id) => Buffer.from(String(id)));
  return (bytes) => {
    const haystack = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (needles.some((needle) => haystack.includes(needle))) {
      tally.guarded++;
      return false;
    }
    return true;
  };
}
