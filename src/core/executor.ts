import type { ConsolaInstance } from "consola";
import { errorReply, okReply, Reply } from "../protocol/codes.ts";
import { fitsInFrame, MAX_PAYLOAD } from "../protocol/frame.ts";
import { parseCommand, parseId, parseIdPair, quote, splitBang, type Parsed } from "../protocol/command.ts";
import type { JoinResult, Maybe, State } from "../state/state.ts";
import { CloseCode } from "../protocol/codes.ts";
import type { CommandResult, Metrics } from "../observe/metrics.ts";
import type { Delivery } from "./delivery.ts";
import { heldEntry } from "./catch-up.ts";
import { channelStream, userStream, type ReplayLog } from "./replay.ts";
import type { ControlSession } from "./session.ts";
import { createDropReporter } from "./drop-reporter.ts";
import { all, then } from "./maybe.ts";
import { newSalt, sameSecret } from "./secret.ts";

export interface ExecutorOptions {
  state: State;
  delivery: Delivery;
  /** Held messages kept per offline user. */
  heldLimit: number;
  replay: ReplayLog;
  /** The counters `[stats]` reports: this node's, or the sum over a cluster's nodes. */
  counters: () => Maybe<Record<string, number>>;
  /** The `[auth]` secret; "" when none is required (then `[auth]` always succeeds). */
  secret: string;
  metrics: Metrics;
  log: ConsolaInstance;
}

const STAT_COUNTERS = ["delivered", "dropped", "control_connections", "listeners", "slow_consumers", "replayed", "gaps"];

/** Runs one control payload and returns the reply payload. Expected failures are `[error]` replies. */
export type Execute = (payload: string, session: ControlSession) => Maybe<string>;

type Handler = (data: string, session: ControlSession) => Maybe<string>;

// IDs are at most 16 digits and a comma: a page this long always fills one frame.
const MEMBERS_PAGE = 20_000;

/** The meaning of every control command, free of any transport: the control port and `ctl` share it. */
export function createExecutor(options: ExecutorOptions): Execute {
  const { state, delivery, heldLimit, replay, secret, counters, metrics, log } = options;
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
    return then(replay.append(userStream(user), message), (offset) =>
      then(delivery.isOnline(user), (online) => {
        if (online) {
          return then(delivery.toUser(user, message, offset), () => {
            metrics.delivered++;
            return ok(Reply.messageSent);
          });
        }
        return then(state.hold(user, heldEntry(offset, message), heldLimit), (dropped) => {
          metrics.held++;
          if (dropped > 0) {
            metrics.dropped += dropped;
            reportDrop(user, dropped);
          }
          return ok(Reply.messageQueued);
        });
      }),
    );
  };

  const handlers: Record<string, Handler> = {
    newuser: (data) => {
      const salt = newSalt();
      return noData("newuser", data) ?? then(state.createUser(salt), (id) => okReply(`${id}!${salt}`));
    },

    killuser: (data) =>
      withUser(data, (user) =>
        then(state.deleteUser(user), () =>
          then(replay.drop(userStream(user)), () =>
            then(delivery.disconnect(user, CloseCode.killed), () => ok(Reply.userKilled)),
          ),
        ),
      ),

    whisper: (data) =>
      withSplit(data, "ID!MESSAGE", ([id, message]) => withUser(id, (user) => whisper(user, message))),

    newchannel: (data) => noData("newchannel", data) ?? then(state.createChannel(), (id) => okReply(String(id))),

    killchannel: (data) => {
      const id = parseId(data, "channel ID");
      if (!id.ok) return errorReply(id.error);
      return then(state.deleteChannel(id.value), (members) => {
        if (!members) return noSuchChannel(id.value);
        return then(replay.drop(channelStream(id.value)), () =>
          then(all(members.map((user) => delivery.unsubscribe(user, id.value))), () => ok(Reply.channelKilled)),
        );
      });
    },

    shout: (data) =>
      withSplit(data, "CHAN!MESSAGE", ([id, message]) =>
        withChannel(id, (channel) =>
          then(replay.append(channelStream(channel), message), (offset) =>
            then(delivery.toChannel(channel, message, offset), (recipients) => {
              metrics.delivered += recipients;
              return ok(Reply.messageSent);
            }),
          ),
        ),
      ),

    join: (data) =>
      withPair(data, ([channel, user]) =>
        then(state.join(channel, user), (result) =>
          then(result === "ok" ? delivery.subscribe(user, channel) : undefined, () =>
            membership(result, channel, user, Reply.userJoined),
          ),
        ),
      ),

    leave: (data) =>
      withPair(data, ([channel, user]) =>
        then(state.leave(channel, user), (result) =>
          then(result === "ok" ? delivery.unsubscribe(user, channel) : undefined, () =>
            membership(result, channel, user, Reply.userLeft),
          ),
        ),
      ),

    store: (data) =>
      withSplit(data, "KEY!VALUE", ([key, value]) => {
        if (key.length === 0) return errorReply("empty key");
        return then(state.store(key, value), () => ok(`stored ${key}`));
      }),

    clear: (data) => (data.length === 0 ? errorReply("empty key") : then(state.clear(data), () => ok(`cleared ${data}`))),

    retrieve: (data) => (data.length === 0 ? errorReply("empty key") : then(state.retrieve(data), (value) => ok(value))),

    ping: (data) => noData("ping", data) ?? okReply(Reply.pong),

    online: (data) => withUser(data, (user) => then(delivery.isOnline(user), (online) => okReply(online ? "1" : "0"))),

    count: (data) => {
      const id = parseId(data, "channel ID");
      if (!id.ok) return errorReply(id.error);
      return then(state.memberCount(id.value), (members) =>
        members === undefined
          ? noSuchChannel(id.value)
          : then(delivery.onlineIn(id.value), (online) => okReply(`${members}!${online}`)),
      );
    },

    members: (data) => {
      const bang = data.indexOf("!");
      const id = parseId(bang < 0 ? data : data.slice(0, bang), "channel ID");
      if (!id.ok) return errorReply(id.error);
      const after = bang < 0 ? ok0 : parseId(data.slice(bang + 1), "AFTER ID");
      if (!after.ok) return errorReply(after.error);
      return then(state.members(id.value, after.value, MEMBERS_PAGE), (page) =>
        page === undefined ? noSuchChannel(id.value) : okReply(fitIds(page)),
      );
    },

    kick: (data) =>
      withUser(data, (user) => then(delivery.disconnect(user, CloseCode.kicked), () => okReply(Reply.userKicked))),

    stats: (data) =>
      noData("stats", data) ??
      then(state.counts(), (counts) =>
        then(delivery.onlineCount(), (online) =>
          then(counters(), (totals) => {
            const uptime = Math.floor((Date.now() - metrics.startedAt) / 1000);
            const head = `uptime_s=${uptime} users=${counts.users} online=${online} channels=${counts.channels} held=${counts.held}`;
            const tail = STAT_COUNTERS.map((key) => `${key}=${totals[key] ?? 0}`).join(" ");
            return okReply(`${head} ${tail}`);
          }),
        ),
      ),

    // Answered synchronously: the control transport relies on it for a connection's first frame.
    auth: (data) =>
      secret === "" || sameSecret(data, secret) ? okReply(Reply.authenticated) : errorReply("authentication failed"),

    listen: (data, session) => {
      if (data.length > 0) return errorReply(`[listen] takes no data, got ${quote(data)}`);
      session.listen();
      return okReply(Reply.listening);
    },
  };

  const run = (payload: string, session: ControlSession): [name: string, reply: Maybe<string>] => {
    const command = parseCommand(payload);
    if (!command.ok) return ["unknown", errorReply(command.error)];
    const { name, data } = command.value;
    const handler = Object.hasOwn(handlers, name) ? handlers[name] : undefined;
    if (!handler) return ["unknown", errorReply(`unknown command [${name}]`)];
    return [name, handler(data, session)];
  };

  return function execute(payload: string, session: ControlSession): Maybe<string> {
    const [name, reply] = run(payload, session);
    // Counted once here, by known name only, so the metric's label values stay a small fixed set.
    if (!(reply instanceof Promise)) {
      metrics.commands.add(name, resultOf(reply));
      return reply;
    }
    return reply.then(
      (text) => {
        metrics.commands.add(name, resultOf(text));
        return text;
      },
      (error: unknown) => {
        metrics.commands.add(name, "error");
        throw error;
      },
    );
  };
}

function resultOf(reply: string): CommandResult {
  return reply.startsWith("[ok]") ? "ok" : "error";
}

const ok0: Parsed<number> = { ok: true, value: 0 };

/** As many IDs as fit in one reply frame, in order: the backend pages on from the last one. */
function fitIds(ids: number[]): string {
  const room = MAX_PAYLOAD - "[ok] ".length;
  let length = -1;
  let count = 0;
  for (const id of ids) {
    const added = String(id).length + 1;
    if (length + added > room) break;
    length += added;
    count++;
  }
  return ids.slice(0, count).join(",");
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
