import type { ConsolaInstance } from "consola";
import { errorReply, okReply, Reply } from "../protocol/codes.ts";
import { fitsInFrame } from "../protocol/frame.ts";
import { parseCommand, parseId, parseIdPair, quote, splitBang, type Parsed } from "../protocol/command.ts";
import type { JoinResult, Maybe, State } from "../state/state.ts";
import { CloseCode } from "../protocol/codes.ts";
import type { Delivery } from "./delivery.ts";
import { createDropReporter } from "./drop-reporter.ts";
import { then } from "./maybe.ts";
import { newSalt } from "./secret.ts";

export interface ExecutorOptions {
  state: State;
  delivery: Delivery;
  /** Held messages kept per offline user. */
  heldLimit: number;
  log: ConsolaInstance;
}

/** Runs one control payload and returns the reply payload. Expected failures are `[error]` replies. */
export type Execute = (payload: string) => Maybe<string>;

type Handler = (data: string) => Maybe<string>;

/** The meaning of every control command, free of any transport: the control port and `ctl` share it. */
export function createExecutor({ state, delivery, heldLimit, log }: ExecutorOptions): Execute {
  const reportDrop = createDropReporter(log);

  const withUser = (data: string, fn: (user: number) => Maybe<string>): Maybe<string> => {
    const id = parseId(data, "user ID");
    if (!id.ok) return errorReply(id.error);
    return then(state.userSalt(id.value), (salt) => (salt === undefined ? noSuchUser(id.value) : fn(id.value)));
  };

  const withChannel = (data: string, fn: (channel: number) => Maybe<string>): Maybe<string> => {
    const id = parseId(data, "channel ID");
    if (!id.ok) return errorReply(id.error);
    return then(state.channelExists(id.value), (exists) => (exists ? fn(id.value) : noSuchChannel(id.value)));
  };

  const whisper = (user: number, message: string): Maybe<string> => {
    if (delivery.isOnline(user)) {
      delivery.toUser(user, message);
      return ok(Reply.messageSent);
    }
    return then(state.hold(user, message, heldLimit), (dropped) => {
      if (dropped > 0) reportDrop(user, dropped);
      return ok(Reply.messageQueued);
    });
  };

  const handlers: Record<string, Handler> = {
    newuser: (data) => {
      const salt = newSalt();
      return noData("newuser", data) ?? then(state.createUser(salt), (id) => okReply(`${id}!${salt}`));
    },

    killuser: (data) =>
      withUser(data, (user) =>
        then(state.deleteUser(user), () => {
          delivery.disconnect(user, CloseCode.killed);
          return ok(Reply.userKilled);
        }),
      ),

    whisper: (data) =>
      withSplit(data, "ID!MESSAGE", ([id, message]) => withUser(id, (user) => whisper(user, message))),

    newchannel: (data) => noData("newchannel", data) ?? then(state.createChannel(), (id) => okReply(String(id))),

    killchannel: (data) => {
      const id = parseId(data, "channel ID");
      if (!id.ok) return errorReply(id.error);
      return then(state.deleteChannel(id.value), (members) => {
        if (!members) return noSuchChannel(id.value);
        for (const user of members) delivery.unsubscribe(user, id.value);
        return ok(Reply.channelKilled);
      });
    },

    shout: (data) =>
      withSplit(data, "CHAN!MESSAGE", ([id, message]) =>
        withChannel(id, (channel) => {
          delivery.toChannel(channel, message);
          return ok(Reply.messageSent);
        }),
      ),

    join: (data) =>
      withPair(data, ([channel, user]) =>
        then(state.join(channel, user), (result) => {
          if (result === "ok") delivery.subscribe(user, channel);
          return membership(result, channel, user, Reply.userJoined);
        }),
      ),

    leave: (data) =>
      withPair(data, ([channel, user]) =>
        then(state.leave(channel, user), (result) => {
          if (result === "ok") delivery.unsubscribe(user, channel);
          return membership(result, channel, user, Reply.userLeft);
        }),
      ),

    store: (data) =>
      withSplit(data, "KEY!VALUE", ([key, value]) => {
        if (key.length === 0) return errorReply("empty key");
        return then(state.store(key, value), () => ok(`stored ${key}`));
      }),

    clear: (data) => (data.length === 0 ? errorReply("empty key") : then(state.clear(data), () => ok(`cleared ${data}`))),

    retrieve: (data) => (data.length === 0 ? errorReply("empty key") : then(state.retrieve(data), (value) => ok(value))),
  };

  return function execute(payload: string): Maybe<string> {
    const command = parseCommand(payload);
    if (!command.ok) return errorReply(command.error);
    const handler = Object.hasOwn(handlers, command.value.name) ? handlers[command.value.name] : undefined;
    if (!handler) return errorReply(`unknown command [${command.value.name}]`);
    return handler(command.value.data);
  };
}

/** An `[ok]` reply, or an `[error]` when it would not fit in one frame (a huge key echoed back). */
function ok(data: string): string {
  const reply = okReply(data);
  return fitsInFrame(reply) ? reply : errorReply("reply too large for one frame");
}

function noData(name: string, data: string): string | undefined {
  return data.length === 0 ? undefined : errorReply(`[${name}] takes no data, got ${quote(data)}`);
}

function withSplit(data: string, usage: string, fn: (parts: [string, string]) => Maybe<string>): Maybe<string> {
  const split = splitBang(data, usage);
  return split.ok ? fn(split.value) : errorReply(split.error);
}

function withPair(data: string, fn: (ids: [number, number]) => Maybe<string>): Maybe<string> {
  const pair: Parsed<[number, number]> = parseIdPair(data, "CHAN!USER");
  return pair.ok ? fn(pair.value) : errorReply(pair.error);
}

function membership(result: JoinResult, channel: number, user: number, done: string): string {
  if (result === "no-channel") return noSuchChannel(channel);
  if (result === "no-user") return noSuchUser(user);
  return okReply(done);
}

function noSuchUser(id: number): string {
  return errorReply(`no such user ${id}`);
}

function noSuchChannel(id: number): string {
  return errorReply(`no such channel ${id}`);
}
