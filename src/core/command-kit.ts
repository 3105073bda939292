// What every command handler shares: looking IDs up, shaping replies, splitting data.

import { errorReply, okReply } from "../protocol/codes.ts";
import { parseId, parseIdPair, quote, splitBang, type Parsed } from "../protocol/command.ts";
import { fitsInFrame } from "../protocol/frame.ts";
import type { JoinResult, Maybe, State } from "../state/state.ts";
import { then } from "./maybe.ts";
import type { ControlSession } from "./session.ts";

/** Runs one command's data; expected failures are `[error]` replies. */
export type Handler = (data: string, session: ControlSession) => Maybe<string>;

/** Runs `fn` with the user or channel the data names, or answers that it does not exist. */
export function createLookups(state: State) {
  return {
    withUser(data: string, fn: (user: number) => Maybe<string>): Maybe<string> {
      const id = parseId(data, "user ID");
      if (!id.ok) return errorReply(id.error);
      const user = id.value;
      const salt = state.userSalt(user);
      if (salt instanceof Promise) return salt.then((s) => (s === undefined ? noSuchUser(user) : fn(user)));
      return salt === undefined ? noSuchUser(user) : fn(user);
    },
    withChannel(data: string, fn: (channel: number) => Maybe<string>): Maybe<string> {
      const id = parseId(data, "channel ID");
      if (!id.ok) return errorReply(id.error);
      return then(state.channelExists(id.value), (exists) => (exists ? fn(id.value) : noSuchChannel(id.value)));
    },
  };
}

/** An `[ok]` reply, or an `[error]` when it would not fit in one frame (a huge key echoed back). */
export function ok(data: string): string {
  const reply = okReply(data);
  return fitsInFrame(reply) ? reply : errorReply("reply too large for one frame");
}

export function noData(name: string, data: string): string | undefined {
  return data.length === 0 ? undefined : errorReply(`[${name}] takes no data, got ${quote(data)}`);
}

export function withSplit(data: string, usage: string, fn: (parts: [string, string]) => Maybe<string>): Maybe<string> {
  const split = splitBang(data, usage);
  return split.ok ? fn(split.value) : errorReply(split.error);
}

export function withPair(data: string, fn: (ids: [number, number]) => Maybe<string>): Maybe<string> {
  const pair: Parsed<[number, number]> = parseIdPair(data, "CHAN!USER");
  return pair.ok ? fn(pair.value) : errorReply(pair.error);
}

export function membership(result: JoinResult, channel: number, user: number, done: string): string {
  if (result === "no-channel") return noSuchChannel(channel);
  if (result === "no-user") return noSuchUser(user);
  return okReply(done);
}

export function noSuchUser(id: number): string {
  return errorReply(`no such user ${id}`);
}

export function noSuchChannel(id: number): string {
  return errorReply(`no such channel ${id}`);
}
