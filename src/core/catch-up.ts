import { atNotice, epochNotice, numbered, WHISPER_SOURCE, type V2Login } from "../protocol/resume.ts";
import type { Maybe } from "../state/state.ts";
import { all, then } from "./maybe.ts";
import { channelStream, userStream, type ReplayLog, type Since } from "./replay.ts";

/**
 * What a browser is sent at login, before anything live, and what the backend is told about it. The
 * replay itself is never read whole here: each listed source carries only its first page, and the
 * transport reads on (ReplayCursor) as fast as the browser takes it.
 */
export interface CatchUp {
  /** Sent at once, in order: v1 — the held whispers; v2 — `#epoch`, then the held whispers of an unlisted whisper stream. */
  messages: string[];
  /** v2: the `#at` notice, sent after `messages` (a notice: not counted as delivered). */
  at?: string;
  /**
   * v2: sent after `#at`: what the sources it names received after their starting points while the
   * login was decided (on a cluster, before this node was among the user's), numbered.
   */
  afterAt: string[];
  /**
   * v2: per source `#at` names, the offset it is live after: the newest message `afterAt` has of it (its
   * starting point when none). The transport passes over what a cluster's bus still brings up to it.
   */
  liveAfter: StartingPoints;
  /** v2: per listed source, in the login's order, where its replay starts (or that it is a gap). */
  sources: ReplaySource[];
  /** Reads the next page of a source's window after `offset`. */
  more(key: string, offset: number): Maybe<Since>;
  /**
   * The first pages and starting points were read in the turn the login is carried out (a replay log
   * that answers at once). Read from a cluster's Redis, they are older than that: the stream reads the
   * pages again, and what the bus still brings up to a starting point is passed over.
   */
  current: boolean;
}

/** One source a v2 browser resumes: its name as the browser knows it, its stream, and what was read of it so far. */
export interface ReplaySource {
  /** `u` or a channel ID. */
  source: string;
  /** The replay log's key (userStream/channelStream). */
  key: string;
  /** The browser's position: the last offset it has. */
  from: number;
  /** The first page after the position, or a gap, as read at login. */
  first: Since;
}

/**
 * Where a v2 login starts the sources the browser did not list (every one on a plain `ID!SALT`): each
 * source's offset, read once the node keeps what arrives for the user and before the user is claimed
 * (Delivery.claim's `prepare`). Whatever is numbered later reaches the browser: live, or from what
 * arrived during the login. The browser is told these positions (`#at`): a page that then hears nothing
 * from a source still lists it when it resumes, and gets what it missed.
 */
export type StartingPoints = Map<string, number>;

export function startingPoints(replay: ReplayLog, login: V2Login, user: number, channels: number[]): Maybe<StartingPoints> {
  const sources = login.positions.has(WHISPER_SOURCE) ? [] : [WHISPER_SOURCE];
  // A truncated list's unnamed channels are told #gap: they have a position, just not one it could send.
  if (!login.truncated) for (const channel of channels) if (!login.positions.has(String(channel))) sources.push(String(channel));
  return then(all(sources.map((source) => replay.last(streamOf(source, user)))), (lasts) => new Map(sources.map((source, i) => [source, lasts[i]!])));
}

/** Entries read from the replay window per lookup: bounds what a login holds before the browser reads. */
export const REPLAY_PAGE = 16;

/** Held whispers are stored as `OFFSET!TEXT` so either protocol can be served at the next login. */
export function heldEntry(offset: number, text: string): string {
  return `${offset}!${text}`;
}

export function heldText(entry: string): string {
  return entry.slice(entry.indexOf("!") + 1);
}

function heldOffset(entry: string): number {
  return Number.parseInt(entry, 10);
}

/**
 * Held whispers (heldEntry) in offset order: one pass that sorts nothing when they already are. Only
 * for entries numbered in one epoch (a cluster's Redis): a data file's held whispers outlive a crash
 * that can number later ones from lower offsets again, and there the order of the holds is the truth.
 */
export function inOffsetOrder(held: string[]): string[] {
  for (let i = 1; i < held.length; i++) {
    if (heldOffset(held[i]!) < heldOffset(held[i - 1]!)) return held.toSorted((a, b) => heldOffset(a) - heldOffset(b));
  }
  return held;
}

export function catchUpV1(held: string[]): CatchUp {
  return { messages: held.map(heldText), afterAt: [], liveAfter: new Map(), sources: [], more: () => ({ gap: true }), current: true };
}

/** Messages of a source read from its starting point at login: past this many, it is live from the login, unnamed. */
export const STARTED_PAGE = 64;

/**
 * The v2 catch-up. A listed whisper stream is served from the replay window, which holds every whisper
 * the held queue does (and those lost in flight), so the held queue is then dropped, unless the window no
 * longer reaches the position (a gap): then the held whispers are sent, before the `#gap u`. Sources not
 * listed start at their starting points (`starts`), told to the browser by `#at`: what each received
 * since (on a cluster, until this node was among the user's, it was not routed here) is read here and
 * sent after `#at`. The replay is read first and the held whispers are given last, so a login that
 * fails reading the replay has taken nothing from the user.
 */
export function catchUpV2(replay: ReplayLog, login: V2Login, user: number, channels: number[], starts: StartingPoints = new Map()): Maybe<(held: string[]) => CatchUp> {
  const member = new Set(channels.map(String));
  const listed = [...login.positions].filter(([source]) => source === WHISPER_SOURCE || member.has(source));
  const started = [...starts].filter(([source]) => source === WHISPER_SOURCE || member.has(source));
  // A channel joined after the starting points were read (on a cluster, before this node was among the
  // user's: the join told no node here) starts where the user joined it, its floor.
  if (starts.size > 0 && !login.truncated) {
    for (const source of member) if (!starts.has(source) && !login.positions.has(source)) started.push([source, 0]);
  }
  const lookups = listed.map(([source, offset]): Maybe<Since> => {
    if (login.epoch !== replay.epoch) return { gap: true };
    return replay.since(streamOf(source, user), offset, REPLAY_PAGE, memberOf(source, user));
  });
  // Read in this turn, a starting point is the source's last offset: there is nothing after it to read.
  const nothingSince: Since = { gap: false, entries: [] };
  for (const [source, offset] of started) {
    lookups.push(replay.immediate ? nothingSince : replay.since(streamOf(source, user), offset, STARTED_PAGE, memberOf(source, user)));
  }
  const pages = all(lookups);
  // Not from whether these pages were read at once: a login that lists nothing reads none.
  const current = replay.immediate;
  return then(pages, (found) => (held: string[]) => {
    // A list that left sources out: each channel it does not name is told `#gap` (it may have missed
    // some), before the replay of those it names.
    const unlisted = login.truncated ? [...member].filter((source) => !login.positions.has(source)) : [];
    const sources = [
      ...unlisted.map((source): ReplaySource => ({ source, key: streamOf(source, user), from: 0, first: { gap: true } })),
      ...listed.map(([source, from], i): ReplaySource => ({ source, key: streamOf(source, user), from, first: found[i]! })),
    ];
    const at = new Map<string, number>();
    const afterAt: string[] = [];
    const liveAfter: StartingPoints = new Map();
    started.forEach(([source, from], i) => {
      const page = found[listed.length + i]!;
      const joined = !starts.has(source);
      // Unless the page holds all the source received since (not past the window, not too much at once),
      // the source is live from the login, unnamed, as before starting points were read.
      if (page.gap || (!joined && page.floor !== undefined && page.floor > from) || page.entries.length >= STARTED_PAGE) return;
      const start = joined ? (page.floor ?? from) : from;
      at.set(source, start);
      for (const entry of page.entries) afterAt.push(numbered(source, entry.offset, entry.text));
      liveAfter.set(source, page.entries.at(-1)?.offset ?? start);
    });
    const whisperStart = at.get(WHISPER_SOURCE);
    const before = heldToSend(sources.find((s) => s.source === WHISPER_SOURCE), whisperStart, held);
    const whisperKey = userStream(user);
    const more = (key: string, offset: number) => replay.since(key, offset, REPLAY_PAGE, key === whisperKey ? undefined : user);
    return {
      messages: [epochNotice(replay.epoch), ...before],
      at: at.size > 0 ? atNotice(at) : undefined,
      afterAt,
      liveAfter,
      sources,
      more,
      current,
    };
  });
}

/**
 * The held whispers a v2 login sends before its replay (and before `#at`). The window covers a
 * replayed whisper stream's held whispers only above its position. Where it does not reach back at all
 * (a gap: a new epoch after a crash), the held queue is all there is of them, and each was acknowledged
 * "message queued": all are sent, then the #gap. Where it no longer reaches back (a floor past the
 * position), the held ones below the window go first, then the #gap and the window's whispers. A
 * stream started at a starting point sends those up to it: the later ones come after `#at`, read from
 * the window with everything else it received since. Not listed and not started: all of them.
 */
function heldToSend(whispers: ReplaySource | undefined, start: number | undefined, held: string[]): string[] {
  const numberedHeld = (entry: string) => `${WHISPER_SOURCE}:${entry}`;
  if (!whispers) return (start === undefined ? held : held.filter((entry) => heldOffset(entry) <= start)).map(numberedHeld);
  if (whispers.first.gap) return held.map(numberedHeld);
  const floor = whispers.first.floor;
  if (floor === undefined || floor <= whispers.from) return [];
  return held.filter((entry) => heldOffset(entry) <= floor).map(numberedHeld);
}

/** A channel is read as its member, so nothing from before the membership is replayed; whispers are the user's own. */
function memberOf(source: string, user: number): number | undefined {
  return source === WHISPER_SOURCE ? undefined : user;
}

function streamOf(source: string, user: number): string {
  return source === WHISPER_SOURCE ? userStream(user) : channelStream(Number(source));
}
