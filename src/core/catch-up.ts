import { epochNotice, gapNotice, numbered, WHISPER_SOURCE, type V2Login } from "../protocol/resume.ts";
import type { Maybe } from "../state/state.ts";
import { all, then } from "./maybe.ts";
import { channelStream, userStream, type ReplayLog, type Since } from "./replay.ts";

/** What a browser is sent at login, before anything live, and what the backend is told about it. */
export interface CatchUp {
  /** In order: v1 — the held whispers; v2 — `#epoch`, then per listed source its missed messages or `#gap`, then held whispers. */
  messages: string[];
  replayed: number;
  /** Sources (as the browser names them) that could not be recovered. */
  gaps: string[];
}

/** Held whispers are stored as `OFFSET!TEXT` so either protocol can be served at the next login. */
export function heldEntry(offset: number, text: string): string {
  return `${offset}!${text}`;
}

export function heldText(entry: string): string {
  return entry.slice(entry.indexOf("!") + 1);
}

export function catchUpV1(held: string[]): CatchUp {
  return { messages: held.map(heldText), replayed: 0, gaps: [] };
}

/**
 * The v2 catch-up. A listed whisper stream is served from the replay window, which holds every whisper
 * the held queue does (and those lost in flight), so the held queue is then dropped; an unlisted one is
 * live from now, after the held whispers.
 */
export function catchUpV2(replay: ReplayLog, login: V2Login, user: number, channels: number[], held: string[]): Maybe<CatchUp> {
  const member = new Set(channels.map(String));
  const sources = [...login.positions].filter(([source]) => source === WHISPER_SOURCE || member.has(source));
  const lookups = sources.map(([source, offset]): Maybe<Since> => {
    if (login.epoch !== replay.epoch) return { gap: true };
    return replay.since(source === WHISPER_SOURCE ? userStream(user) : channelStream(Number(source)), offset);
  });
  return then(all(lookups), (found) => {
    const messages = [epochNotice(replay.epoch)];
    let replayed = 0;
    const gaps: string[] = [];
    found.forEach((since, i) => {
      const source = sources[i]![0];
      if (since.gap) {
        messages.push(gapNotice(source));
        gaps.push(source);
        return;
      }
      for (const entry of since.entries) messages.push(numbered(source, entry.offset, entry.text));
      replayed += since.entries.length;
    });
    if (!login.positions.has(WHISPER_SOURCE)) {
      for (const entry of held) messages.push(`${WHISPER_SOURCE}:${entry}`);
    }
    return { messages, replayed, gaps };
  });
}
