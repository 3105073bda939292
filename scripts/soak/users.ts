// A soak backend's model of one of its users and that user's browser sessions. It is updated only in the
// order the backend's own control connection reports things (replies and [online]/[offline] events), which
// is the order they happened in the server; the browser worker's reports only add what the browser saw.

import type { Expected } from "./verify.ts";

/** What the browser worker saw of a session once it ended. */
export interface SessionEnd {
  code: number;
  /** False when the WebSocket never opened. */
  opened: boolean;
  keys: number[];
  /** Texts that were not soak messages. */
  strange: string[];
}

export interface Session {
  id: number;
  user: number;
  /** The server admitted it: its `[online]` event arrived. */
  online: boolean;
  /** Its `[offline]` event arrived. */
  offline: boolean;
  /** The soak told the browser to leave: what was in flight then may be lost, and any close code is right. */
  closedByClient: boolean;
  /** The close code the server must have given it (kick 4005, kill 4004, login after a kill 4001). */
  expectedCode: number | undefined;
  end: SessionEnd | undefined;
}

/** Close codes a browser may see when it closed itself, whatever the server did at the same moment. */
const CLIENT_CLOSE_CODES = [1000, 1005, 4004, 4005];

export class SoakUser {
  /** The server still has the user (set false at the `[killuser]` reply). */
  alive = true;
  /** A `[killuser]` is on its way: choose this user for nothing more. */
  doomed = false;
  readonly channels = new Set<number>();
  readonly sessions: Session[] = [];
  readonly expected: Expected[] = [];
  /** Whispers answered `message queued`: they belong to whichever session comes online next. */
  held: number[] = [];

  constructor(
    readonly id: number,
    readonly token: string,
  ) {}

  get session(): Session | undefined {
    return this.sessions.at(-1);
  }

  /** The server counts a browser of this user as connected. */
  get online(): boolean {
    const s = this.session;
    return s !== undefined && s.online && !s.offline;
  }

  /** Alive with no session under way: a new one may start. */
  get idle(): boolean {
    const s = this.session;
    return this.alive && (s === undefined || finished(s));
  }

  /** A message the server delivered now, to the session it counts online. */
  deliver(key: number): void {
    this.expected.push({ key, session: this.session!.id });
  }

  /** The `[online]` event: held whispers go to this session, before anything newer. */
  cameOnline(): string | undefined {
    const s = this.session;
    if (!s || s.online) return `[online] ${this.id} with no session waiting to log in`;
    s.online = true;
    for (const key of this.held) this.expected.push({ key, session: s.id });
    this.held = [];
    return undefined;
  }

  wentOffline(): string | undefined {
    const s = this.session;
    if (!s || !s.online || s.offline) return `[offline] ${this.id} with no session online`;
    s.offline = true;
    return undefined;
  }

  /** Records why the server ended the current session: `code` it must show, if it was ended by this command. */
  endedByServer(code: number): void {
    const s = this.session;
    if (!s || s.expectedCode !== undefined) return;
    if (s.online && s.offline) s.expectedCode = code;
  }

  /** After `[killuser]`: a session whose login had not run yet will be refused (4001); held whispers are gone. */
  killed(): number {
    this.alive = false;
    this.endedByServer(4004);
    const s = this.session;
    if (s && !s.online && s.expectedCode === undefined) s.expectedCode = 4001;
    const dropped = this.held.length;
    this.held = [];
    return dropped;
  }
}

/**
 * Both sides agree it is over: the worker reported its close and, when the server had admitted the browser,
 * its `[offline]` arrived too. The two travel different roads (IPC, the control connection), so the worker's
 * report may come first, even before the `[online]`: a browser closed after opening and without a login
 * refusal was admitted, and the session waits for both events.
 */
export function finished(s: Session): boolean {
  if (s.end === undefined) return false;
  const admitted = s.end.opened && s.end.code !== 4001 && s.end.code !== 4003;
  return s.online ? s.offline : !admitted;
}

/** A session's state in a few words, for a run that got stuck on it. */
export function describeSession(user: SoakUser, s: Session): string {
  const server = s.online ? (s.offline ? "online then offline" : "online") : "never online";
  const browser = s.end ? `closed ${s.end.code}${s.end.opened ? "" : " before opening"}` : "still open";
  const how = [s.closedByClient && "left by itself", s.expectedCode && `expected ${s.expectedCode}`, !user.alive && "user killed"].filter(Boolean);
  return `session ${s.id} of user ${user.id}: server says ${server}, browser ${browser}${how.length > 0 ? ` (${how.join(", ")})` : ""}`;
}

/** Why an ended session's close code is wrong, if it is. */
export function closeProblem(s: Session): string | undefined {
  const end = s.end;
  if (!end) return `session ${s.id} of user ${s.user} never ended`;
  if (!end.opened && s.expectedCode !== 4001) return `session ${s.id} of user ${s.user} could not connect (${end.code})`;
  if (s.closedByClient ? CLIENT_CLOSE_CODES.includes(end.code) : end.code === s.expectedCode) return undefined;
  const why = s.expectedCode === undefined ? "the soak never ended it" : `expected ${s.expectedCode}`;
  return `session ${s.id} of user ${s.user} closed with ${end.code} (${why})`;
}
