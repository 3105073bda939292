// The original webtalk's commands: users, channels, whispers, shouts and the key/value store.

import type { ConsolaInstance } from "consola";
import { CloseCode, errorReply, okReply, Reply } from "../protocol/codes.ts";
import { parseId, splitBang } from "../protocol/command.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { Maybe, State } from "../state/state.ts";
import { heldEntry } from "./catch-up.ts";
import { createLookups, membership, noData, noSuchChannel, noSuchUser, ok, withPair, withSplit, type Handler } from "./command-kit.ts";
import type { Delivery } from "./delivery.ts";
import { createDropReporter } from "./drop-reporter.ts";
import { inOrder } from "./in-order.ts";
import { all, then } from "./maybe.ts";
import { channelStream, userStream, type ReplayLog } from "./replay.ts";
import type { NumberedSend } from "./numbered-send.ts";
import { newSalt } from "./secret.ts";

// The replies of the hottest commands, built once.
const SENT = okReply(Reply.messageSent);
const QUEUED = okReply(Reply.messageQueued);

export interface MessagingDeps {
  state: State;
  delivery: Delivery;
  /** Held messages kept per offline user. */
  heldLimit: number;
  replay: ReplayLog;
  /** A cluster's: numbers and sends shouts and whispers in one step. Without it, `replay` numbers and `delivery` sends. */
  numbered?: NumberedSend;
  metrics: Metrics;
  log: ConsolaInstance;
}

export function messagingCommands({ state, delivery, heldLimit, replay, numbered, metrics, log }: MessagingDeps): Record<string, Handler> {
  const reportDrop = createDropReporter(log);
  const { withUser, withChannel } = createLookups(state);

  // Whispers are the busiest command: each step answers at once in memory and SQLite, so the steps
  // are taken directly when they do, with no closure made per whisper.
  const whisperHere = (user: number, message: string): Maybe<string> => {
    const offset = replay.append(userStream(user), message);
    return offset instanceof Promise ? offset.then((o) => toUserOrHeld(user, message, o)) : toUserOrHeld(user, message, offset);
  };

  // A cluster's whisper: the user checked, numbered and, when online, published in one script; else
  // held in that same step (a login on another node takes the held queue before it or claims the user
  // first). One call, issued before this returns: the control connection may pipeline past it.
  const whisperNumbered = (send: NumberedSend) => (data: string): Maybe<string> => {
    const split = splitBang(data, "ID!MESSAGE");
    if (!split.ok) return errorReply(split.error);
    const id = parseId(split.value[0], "user ID");
    if (!id.ok) return errorReply(id.error);
    const user = id.value;
    return inOrder(
      send.whisper(user, split.value[1], heldLimit).then((outcome) => {
        if (outcome === undefined) return noSuchUser(user);
        if (outcome.held) return countHeld(user, outcome.dropped);
        metrics.delivered++;
        return SENT;
      }),
    );
  };

  const shoutHere = (channel: number, message: string): Maybe<string> =>
    then(replay.append(channelStream(channel), message), (offset) =>
      then(delivery.toChannel(channel, message, offset), (recipients) => {
        metrics.delivered += recipients;
        return SENT;
      }),
    );

  // Each node counts the deliveries of a cluster's shout when it reaches its browsers. As a whisper,
  // one script (the channel checked in it), issued before this returns.
  const shoutNumbered = (send: NumberedSend) => (data: string): Maybe<string> => {
    const split = splitBang(data, "CHAN!MESSAGE");
    if (!split.ok) return errorReply(split.error);
    const id = parseId(split.value[0], "channel ID");
    if (!id.ok) return errorReply(id.error);
    const channel = id.value;
    return inOrder(send.shout(channel, split.value[1]).then((sent) => (sent ? SENT : noSuchChannel(channel))));
  };

  const toUserOrHeld = (user: number, message: string, offset: number): Maybe<string> => {
    const online = delivery.isOnline(user);
    if (online instanceof Promise) return online.then((on) => (on ? sendNow(user, message, offset) : holdNow(user, message, offset)));
    return online ? sendNow(user, message, offset) : holdNow(user, message, offset);
  };

  const sendNow = (user: number, message: string, offset: number): Maybe<string> => {
    const sent = delivery.toUser(user, message, offset);
    metrics.delivered++;
    return sent instanceof Promise ? sent.then(() => SENT) : SENT;
  };

  const holdNow = (user: number, message: string, offset: number): Maybe<string> =>
    then(state.hold(user, heldEntry(offset, message), heldLimit), (dropped) => countHeld(user, dropped));

  const countHeld = (user: number, dropped: number): string => {
    metrics.held++;
    if (dropped > 0) {
      metrics.dropped += dropped;
      reportDrop(user, dropped);
    }
    return QUEUED;
  };

  // A new member's replay floor. Without it a resume could reach back to before the join, so when it
  // cannot be recorded the join is undone and the command fails.
  const floorAt = (channel: number, user: number): Maybe<void> => {
    const recorded = replay.joined(channelStream(channel), user);
    if (!(recorded instanceof Promise)) return;
    return recorded.catch(async (error: unknown) => {
      await state.leave(channel, user);
      throw error;
    });
  };

  // Where a new member starts in the channel, for its browsers' `#at`: its floor, read in the same turn
  // on one node. In a cluster the join's own script tells the nodes (bus.ts `o`), and this is unused.
  const joinedAt = (result: string, channel: number): number | undefined => {
    if (result !== "added" || numbered) return undefined;
    const last = replay.last(channelStream(channel));
    return last instanceof Promise ? undefined : last;
  };

  // Memory and SQLite answer at once: the user or channel is looked up, then the message sent.
  // In a cluster, [join] and [leave] are one Redis script each (membership, replay floor, the node's
  // route count and the publish to the user's node: state/redis.ts) and every later step answers
  // without Redis, so the connection may pipeline past them like whispers and shouts. On a Redis
  // Cluster they take two steps (state.stepwise): the connection waits for their reply.
  const clusterInOrder = (reply: Maybe<string>): Maybe<string> =>
    numbered && !state.stepwise && reply instanceof Promise ? inOrder(reply) : reply;

  const whisperLocal: Handler = (data) =>
    withSplit(data, "ID!MESSAGE", ([id, message]) => withUser(id, (user) => whisperHere(user, message)));
  const shoutLocal: Handler = (data) =>
    withSplit(data, "CHAN!MESSAGE", ([id, message]) => withChannel(id, (channel) => shoutHere(channel, message)));

  return {
    newuser: (data) => {
      const salt = newSalt();
      return noData("newuser", data) ?? then(state.createUser(salt), (id) => okReply(`${id}!${salt}`));
    },

    killuser: (data) =>
      withUser(data, (user) =>
        then(state.deleteUser(user), () =>
          then(replay.drop(userStream(user)), () =>
            then(replay.forget(user), () =>
              then(delivery.disconnect(user, CloseCode.killed), () => ok(Reply.userKilled)),
            ),
          ),
        ),
      ),

    whisper: numbered ? whisperNumbered(numbered) : whisperLocal,

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

    shout: numbered ? shoutNumbered(numbered) : shoutLocal,

    join: (data) =>
      clusterInOrder(withPair(data, ([channel, user]) =>
        then(state.join(channel, user), (result) =>
          then(result === "added" ? floorAt(channel, user) : undefined, () =>
            then(result === "added" || result === "ok" ? delivery.subscribe(user, channel, joinedAt(result, channel)) : undefined, () =>
              membership(result, channel, user, Reply.userJoined),
            ),
          ),
        ),
      )),

    leave: (data) =>
      clusterInOrder(withPair(data, ([channel, user]) =>
        then(state.leave(channel, user), (result) =>
          then(result === "ok" ? replay.left(channelStream(channel), user) : undefined, () =>
            then(result === "ok" ? delivery.unsubscribe(user, channel) : undefined, () =>
              membership(result, channel, user, Reply.userLeft),
            ),
          ),
        ),
      )),

    store: (data) =>
      withSplit(data, "KEY!VALUE", ([key, value]) => {
        if (key.length === 0) return errorReply("empty key");
        return then(state.store(key, value), () => ok(`stored ${key}`));
      }),

    clear: (data) => (data.length === 0 ? errorReply("empty key") : then(state.clear(data), () => ok(`cleared ${data}`))),

    retrieve: (data) => (data.length === 0 ? errorReply("empty key") : then(state.retrieve(data), (value) => ok(value))),

  };
}
