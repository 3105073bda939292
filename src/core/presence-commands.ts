// What webtalk adds to the original: presence, channel sizes, kick, stats, events and [auth].

import { CloseCode, errorReply, okReply, Reply } from "../protocol/codes.ts";
import { parseId, quote, type Parsed } from "../protocol/command.ts";
import { MAX_PAYLOAD } from "../protocol/frame.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { Maybe, State } from "../state/state.ts";
import { createLookups, noData, noSuchChannel, type Handler } from "./command-kit.ts";
import type { Delivery } from "./delivery.ts";
import { epochEvent } from "./events.ts";
import { then } from "./maybe.ts";
import { sameSecret } from "./secret.ts";

export interface PresenceDeps {
  state: State;
  delivery: Delivery;
  /** The counters `[stats]` reports: this node's, or the sum over a cluster's nodes. */
  counters: () => Maybe<Record<string, number>>;
  /** The `[auth]` secret; "" when none is required (then `[auth]` always succeeds). */
  secret: string;
  metrics: Metrics;
  /** Answers once this process hears every event raised from then on (a cluster's node subscribes first). */
  eventsReady?: () => Promise<void> | undefined;
  /** --sessions above 1: `[stats]` ends with `sessions=` (browsers logged in); the default reply is unchanged. */
  reportSessions?: boolean;
}

const STAT_COUNTERS = ["delivered", "dropped", "control_connections", "listeners", "slow_consumers", "replayed", "gaps"];

// IDs are at most 16 digits and a comma: a page this long always fills one frame.
const MEMBERS_PAGE = 20_000;

export function presenceCommands({ state, delivery, counters, secret, metrics, eventsReady, reportSessions }: PresenceDeps): Record<string, Handler> {
  const { withUser } = createLookups(state);
  return {
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
            const sessions = reportSessions ? ` sessions=${totals.sessions ?? 0}` : "";
            return then(state.epoch(), (epoch) => okReply(`${head} ${tail} epoch=${epoch}${sessions}`));
          }),
        ),
      ),

    // Answered synchronously: the control transport relies on it for a connection's first frame.
    auth: (data) =>
      secret === "" || sameSecret(data, secret) ? okReply(Reply.authenticated) : errorReply("authentication failed"),

    // The epoch comes first, so a backend knows at once whether the IDs it holds are still this state's.
    listen: (data, session) => {
      if (data.length > 0) return errorReply(`[listen] takes no data, got ${quote(data)}`);
      return then(state.epoch(), (epoch) =>
        then(eventsReady?.(), () => {
          session.listen(epochEvent(epoch));
          return okReply(Reply.listening);
        }),
      );
    },
  };
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
