import type { Server } from "bun";
import type { ConsolaInstance } from "consola";
import type { LocalDelivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import type { LoginDecision } from "../core/login.ts";
import { debugEnabled } from "../observe/log.ts";
import type { Metrics } from "../observe/metrics.ts";
import { CloseCode, Event, type CloseReason } from "../protocol/codes.ts";
import { atNotice, gapNotice, numbered, WHISPER_SOURCE } from "../protocol/resume.ts";
import { dataLines } from "../protocol/sse.ts";
import { REPLAY_PAGE } from "../core/catch-up.ts";
import type { RateBucket } from "./message-rate.ts";
import type { BrowserSocket } from "./browser-socket.ts";
import { ReplayStream, type ReplayTarget } from "./replay-stream.ts";
import type { ReplayRate } from "../core/replay-rate.ts";
import type { ReplacedTabs } from "./replaced-tabs.ts";
import { SessionTable } from "./session-table.ts";
import { SseSession } from "./sse-session.ts";
import type { SseTopics } from "./sse-topics.ts";
import { createWatchdog } from "./watchdog.ts";

/** Per-browser data, typed and set at upgrade. */
export interface Peer {
  phase: "pending" | "verifying" | "live" | "closing";
  user: number;
  /** The browser's address, as logged: the TCP peer's, or the one a trusted proxy forwarded (--trusted-proxies). */
  addr: string;
  /** The user id a login message named (digits before its `!`), for the log of a refusal; never the salt. */
  claimed?: number;
  deadline: number;
  /** Chose the `webtalk.v2` subprotocol: numbered messages, notices, resumable. */
  v2: boolean;
  /** What is left of its --max-message-rate. */
  rate: RateBucket;
  /** A v2 login's replay still being sent, paced by the socket's drain. */
  replay?: ReplayStream;
  /** The whisper offset its replay reached: a live copy of one up to here (queued during the login) was sent already. */
  whisperFloor?: number;
  /** Its number in a cluster that counts --sessions across nodes (session-limit.ts): freed when it goes. */
  session?: number;
  /** The name the page gave its tab at upgrade (`?tab=`), if any: see ReplacedTabs. */
  tab?: string;
}

/** A WebSocket browser (Bun's ServerWebSocket) or an SSE one (SseSession). */
export type Browser = BrowserSocket<Peer>;

/** What a cluster node hears of its browsers' comings and goings (see ClusterDelivery). */
export interface SessionHooks {
  settled(user: number): void;
  /**
   * The user's last browser here went. A promise answers whether the user still has browsers on
   * another node (--sessions): then it is still online, and `[offline]` is that node's to raise.
   */
  released(user: number): void | Promise<boolean>;
  /** Whether the user's first browser here came while it had browsers on another node (--sessions): it is online already. */
  elsewhere?(user: number): boolean;
  /** Whether the browser its cluster claim numbered may be admitted: not if a newer login replaced it meanwhile. */
  admitting?(user: number, session: number): boolean;
  /** A browser its cluster claim numbered (LoginDecision.session) is gone: its slot is free. */
  closed?(user: number, session: number): void;
}

export interface SessionOptions {
  /** Bytes queued for a browser before it is closed as a slow consumer (4006). */
  backpressure: number;
  events: EventHub;
  metrics: Metrics;
  log: ConsolaInstance;
  /** Told when a login is decided (admitted or not) and when a user's last browser here goes away. */
  hooks?: SessionHooks;
  /** --sessions: browsers one user may have here at once (1: a login replaces the browser there). */
  limit?: number;
  /** --duplicate: past the limit, the oldest browser goes ("replace") or the new one ("reject"). */
  duplicate?: "replace" | "reject";
  /** SSE browsers' topics: reached beside Bun's, only while some SSE browser is subscribed. */
  sse: SseTopics;
  /** Charged with what replays send (the login refuses resumes past it). */
  replayRate?: ReplayRate;
  /** Where a replaced tab that had to be cut is remembered, so its next login hears the 4002 it missed. */
  replacedTabs?: ReplacedTabs;
}

/**
 * The logged-in browsers of this process, up to --sessions per user, and the Delivery that reaches them
 * through Bun's native topics: `u<ID>`/`c<ID>` for plain browsers, `U<ID>`/`C<ID>` for webtalk.v2 ones.
 * Presence counts users: `[online]` for a user's first browser here, `[offline]` for its last.
 */
export function createBrowserSessions(server: () => Server<Peer>, options: SessionOptions) {
  const { events, metrics, log, sse } = options;
  const debug = debugEnabled(log);
  const hooks = options.hooks;
  const limit = options.limit ?? 1;
  const duplicate = options.duplicate ?? "replace";
  const sessions = new SessionTable<Browser>();
  /** Browsers replaying a channel, by channel: a shout published meanwhile is heard by their replay. */
  const replaying = new Map<number, Set<Browser>>();
  /**
   * Browsers whose replay of a channel reached an offset while shouts up to it may still be on a
   * cluster's bus, by channel: each joins the channel's topic with the first later shout, so none comes twice.
   */
  const joining = new Map<number, Map<Browser, number>>();
  /**
   * The browser being admitted, while its login settles: the one a cluster hands the shouts it missed
   * during the login (lateShouts); with the offsets its replay went live at, per channel, meanwhile.
   */
  let admitted: { ws: Browser; wentLive: Map<number, number> } | undefined;
  /**
   * Per user, the replaced SSE stream far behind on reading whose close event waits behind its backlog
   * (SseSession.close), so a page that reads late hears 4002 as final and does not come back. One per
   * user: a second cuts the first, so re-logins on streams that never read cannot pile up.
   */
  const behind = new Map<number, { ws: Browser; timer: Timer }>();

  /**
   * Closes a live browser of `user`. A replaced WebSocket far behind is cut (it sees 1006): once Bun is
   * asked to close it, it holds the backlog until the peer reads, out of our reach. A tab that named
   * itself is told its 4002 when it logs in again (ReplacedTabs); another may come back.
   */
  const closeLive = (user: number, ws: Browser, reason: CloseReason): void => {
    if (reason === CloseCode.replaced && ws.getBufferedAmount() > UNREAD_CUTOFF) {
      if (!(ws instanceof SseSession)) {
        if (ws.data.tab !== undefined) options.replacedTabs?.remember(user, ws.data.tab, reason);
        endReplay(ws);
        ws.data.phase = "closing";
        return ws.terminate();
      }
      const earlier = behind.get(user);
      if (earlier) cutBehind(user, earlier.ws);
      const timer = setTimeout(() => cutBehind(user, ws), FINAL_READ_MS);
      timer.unref();
      behind.set(user, { ws, timer });
    }
    close(ws, reason);
  };

  const cutBehind = (user: number, ws: Browser): void => {
    const entry = behind.get(user);
    if (entry?.ws !== ws) return;
    clearTimeout(entry.timer);
    behind.delete(user);
    ws.terminate();
  };

  const watchdog = createWatchdog<Browser>(
    options.backpressure,
    (ws, buffered) => {
      metrics.slowConsumersDisconnected++;
      log.warn(`user ${ws.data.user}: not reading (${buffered} bytes queued); disconnecting it`, { user: ws.data.user, addr: ws.data.addr });
      expel(ws, CloseCode.slowConsumer);
    },
  );

  /**
   * Ends one browser's session now; with the user's last one, so the backend hears `[offline]` before
   * anything that follows.
   */
  const retire = (user: number, ws: Browser, reason: CloseReason): void => {
    sessions.remove(user, ws);
    freed(user, ws);
    metrics.sessions = sessions.browsers;
    watchdog.remove(ws);
    if (!sessions.has(user)) events.emit(Event.offline(user));
    closeLive(user, ws, reason);
  };

  /**
   * Ends it; with the user's last browser here, the user is no longer online on this node. The cluster
   * hears of it before the event is raised, so a backend that hears `[offline]` and asks `[online]` gets 0.
   */
  const release = (user: number, ws: Browser, reason: CloseReason): void => {
    if (sessions.count(user) > 1) return retire(user, ws, reason);
    sessions.remove(user, ws);
    freed(user, ws);
    metrics.sessions = sessions.browsers;
    watchdog.remove(ws);
    departed(user);
    closeLive(user, ws, reason);
  };

  /** A browser numbered by a cluster claim went: the cluster frees its slot (no cost without one). */
  const freed = (user: number, ws: Browser): void => {
    if (ws.data.session === undefined) return;
    hooks?.closed?.(user, ws.data.session);
    ws.data.session = undefined;
  };

  /** The user's last browser here went: `[offline]`, unless it is still online on another node. */
  const departed = (user: number): void => {
    const elsewhere = hooks?.released(user);
    if (!(elsewhere instanceof Promise)) return events.emit(Event.offline(user));
    elsewhere.then(
      (still) => still || events.emit(Event.offline(user)),
      () => events.emit(Event.offline(user)),
    );
  };

  /** Closes one logged-in browser that broke a rule (too fast, too large, not reading); its user's other browsers stay. */
  const expel = (ws: Browser, reason: CloseReason): void => {
    if (ws.data.phase === "live" && sessions.count(ws.data.user) > 0) release(ws.data.user, ws, reason);
    else close(ws, reason);
  };

  /** Runs `fn` for each of the user's browsers here, oldest first. */
  const eachOf = (user: number, fn: (ws: Browser) => void): void => {
    const ws = sessions.first(user);
    if (!ws) return;
    const more = sessions.several ? sessions.more(user) : undefined;
    fn(ws);
    if (more) for (const other of [...more]) fn(other);
  };

  /** Carries out a login decision for a browser that sent its credentials. */
  const admit = (ws: Browser, decision: LoginDecision): void => {
    if (decision.ok) admitted = { ws, wentLive: new Map() };
    try {
      enter(ws, decision);
    } finally {
      try {
        if (decision.ok) hooks?.settled(decision.user);
      } finally {
        admitted = undefined;
      }
    }
  };

  const enter = (ws: Browser, decision: LoginDecision): void => {
    if (!decision.ok) {
      // Counted unless the browser was closed meanwhile: it left, or broke the rules and was counted then.
      if (ws.data.phase === "verifying") metrics.logins[decision.why === "duplicate" ? "duplicate" : "failed"]++;
      log.debug("browser login refused", { user: ws.data.claimed, reason: decision.why, addr: ws.data.addr });
      const reason = decision.why === "duplicate" ? CloseCode.replaced : decision.why === "resume-rate" ? CloseCode.resumeTooOften : CloseCode.loginFailed;
      return close(ws, reason);
    }
    const { user } = decision;
    if (ws.data.phase !== "verifying") {
      log.debug(`user ${user}: browser left during login`, { user, addr: ws.data.addr });
      abandon(decision);
      return;
    }
    if (decision.session !== undefined && hooks?.admitting?.(user, decision.session) === false) {
      log.debug(`user ${user}: a newer login replaced this one before it was admitted`, { user, addr: ws.data.addr });
      close(ws, CloseCode.sessionReplaced);
      abandon(decision);
      return;
    }
    if (sessions.count(user) >= limit) {
      if (limit > 1 && duplicate === "reject") {
        metrics.logins.duplicate++;
        log.debug(`user ${user}: already has ${limit} browsers; refusing the new one`, { user, addr: ws.data.addr });
        close(ws, CloseCode.sessionRefused);
        abandon(decision);
        return;
      }
      log.debug(`user ${user}: newer login replaces the oldest connected browser`, { user, addr: ws.data.addr });
      retire(user, sessions.first(user)!, limit === 1 ? CloseCode.replaced : CloseCode.sessionReplaced);
    }
    metrics.logins.ok++;
    const arrives = !sessions.has(user);
    ws.data.phase = "live";
    ws.data.user = user;
    if (decision.session !== undefined) ws.data.session = decision.session;
    sessions.add(user, ws);
    metrics.sessions = sessions.browsers;
    watchdog.add(ws);
    // The catch-up goes out before the subscriptions exist, so nothing newer can overtake it; a replayed
    // source is subscribed only once its replay has caught up (ReplayStream).
    const { catchUp } = decision;
    for (const message of catchUp.messages) watchdog.observe(ws.send(message));
    if (catchUp.at) watchdog.observe(ws.send(catchUp.at));
    for (const message of catchUp.afterAt) watchdog.observe(ws.send(message));
    metrics.delivered += catchUp.messages.length + catchUp.afterAt.length;
    const { v2 } = ws.data;
    const replayed = new Set(catchUp.sources.map((s) => s.source));
    const { liveAfter } = catchUp;
    // Sent up to there after #at: a copy still on its way (a cluster's bus) is not sent again.
    const whispersSent = liveAfter.get(WHISPER_SOURCE);
    if (whispersSent !== undefined) ws.data.whisperFloor = whispersSent;
    if (!replayed.has(WHISPER_SOURCE)) ws.subscribe(userTopic(user, v2));
    for (const channel of decision.channels) {
      if (replayed.has(String(channel))) continue;
      const sent = liveAfter.get(String(channel));
      // In one process nothing up to it can still come; on a cluster's bus it can: the channel goes
      // live with its first later shout.
      if (sent !== undefined && !catchUp.current) joinAfter(ws, channel, sent);
      else ws.subscribe(channelTopic(channel, v2));
    }
    if (arrives && !hooks?.elsewhere?.(user)) events.emit(Event.online(user));
    if (catchUp.sources.length > 0) {
      ws.data.replay = new ReplayStream(catchUp, replayTarget(ws), replayBudget, REPLAY_PAGE);
      for (const { source } of catchUp.sources) if (source !== WHISPER_SOURCE) listReplay(Number(source), ws);
      drained(ws);
    }
    if (debug) log.debug(`user ${user}: logged in`, { user, addr: ws.data.addr });
  };

  /** The user is no longer claimed here, and the whispers its login took are held again. */
  const abandon = (decision: Extract<LoginDecision, { ok: true }>): void => {
    const fail = (error: unknown) =>
      log.error(`user ${decision.user}: could not hand back what an abandoned login took: ${(error as Error).message}`);
    try {
      const done = decision.abandon();
      if (done instanceof Promise) done.catch(fail);
    } catch (error) {
      fail(error);
    }
  };

  const delivery: LocalDelivery = {
    isOnline: (user) => sessions.has(user),
    onlineCount: () => sessions.size,
    onlineIn: (channel) => {
      const browsers =
        server().subscriberCount(channelTopic(channel, false)) +
        server().subscriberCount(channelTopic(channel, true)) +
        sse.count(channelTopic(channel, true));
      return sessions.several ? browsers - extraIn(channel) : browsers;
    },
    toUser(user, message, offset) {
      const ws = sessions.first(user);
      if (!ws) return;
      if (sessions.several && sessions.more(user)) return toEach(user, message, offset);
      ws.data.replay?.heard(WHISPER_SOURCE, offset);
      if (offset <= (ws.data.whisperFloor ?? 0)) return;
      const text = ws.data.v2 ? numbered(WHISPER_SOURCE, offset, message) : message;
      const topic = userTopic(user, ws.data.v2);
      watchdog.observe(server().publish(topic, text));
      if (sse.size > 0) watchdog.observe(sse.publish(topic, text));
    },
    toChannel(channel, message, offset) {
      // Each protocol has its own topic: the v2 prefix is built once per message, never per subscriber.
      if (replaying.size > 0 || joining.size > 0) hearShout(channel, offset);
      const plain = server().subscriberCount(channelTopic(channel, false));
      const resumable = server().subscriberCount(channelTopic(channel, true));
      // SSE browsers share the v2 topic name in their own fan-out, looked up only while there are any.
      const streams = sse.size > 0 ? sse.count(channelTopic(channel, true)) : 0;
      if (plain > 0) watchdog.observe(server().publish(channelTopic(channel, false), message));
      if (resumable > 0 || streams > 0) {
        const text = numbered(String(channel), offset, message);
        if (resumable > 0) watchdog.observe(server().publish(channelTopic(channel, true), text));
        if (streams > 0) watchdog.observe(sse.publish(channelTopic(channel, true), text));
      }
      return plain + resumable + streams;
    },
    subscribe(user, channel, at) {
      eachOf(user, (ws) => {
        // A channel still being replayed becomes live when its replay catches up; one its login started
        // (joining) goes live with its first later shout, and #at named it already.
        if (ws.data.replay?.pending(String(channel)) || joining.get(channel)?.has(ws)) return;
        const topic = channelTopic(channel, ws.data.v2);
        if (ws.data.v2 && at !== undefined && !ws.isSubscribed(topic)) startAt(ws, channel, at);
        ws.subscribe(topic);
      });
    },
    unsubscribe(user, channel) {
      eachOf(user, (ws) => {
        unlistReplay(channel, ws);
        unlistJoining(ws, channel);
        ws.data.replay?.drop(String(channel));
        ws.unsubscribe(channelTopic(channel, ws.data.v2));
      });
    },
    disconnect(user, reason) {
      for (const ws of sessions.all(user)) release(user, ws, reason);
    },
    closeSession(user, session, reason) {
      const ws = sessions.all(user).find((browser) => browser.data.session === session);
      if (ws) release(user, ws, reason);
      return ws !== undefined;
    },
    sessionsOf(user) {
      const out: number[] = [];
      for (const ws of sessions.all(user)) if (ws.data.session !== undefined) out.push(ws.data.session);
      return out;
    },
    // One node: the session map is the whole truth, and admit() replaces a local browser itself.
    claim: (_user, prepare) => prepare?.(),
    unclaim: () => undefined,
    follow(user, channels) {
      eachOf(user, (ws) => follow(ws, channels));
    },
    users: () => sessions.users(),
    lateShouts(user, late) {
      if (!admitted || admitted.ws.data.user !== user || admitted.ws.data.phase !== "live") return;
      const { ws, wentLive } = admitted;
      for (const { c, m, o } of late.shouts) lateShout(ws, c, m, o, wentLive.get(c));
      if (!late.lost) return;
      log.warn(`user ${user}: some shouts that reached this node during the login were dropped (it took too long)`, { user });
      if (ws.data.v2) for (const topic of ws.subscriptions) if (isChannelTopic(topic)) gap(ws, topic.slice(1));
    },
    gapAll() {
      for (const [, ws] of sessions.entries()) {
        if (!ws.data.v2) continue;
        const sources = [WHISPER_SOURCE, ...ws.subscriptions.filter(isChannelTopic).map((topic) => topic.slice(1))];
        for (const source of sources) gap(ws, source);
      }
    },
  };

  /**
   * A shout that reached this node while the browser's login was in flight, so not through the topic it
   * follows now: it is sent as a live one would be, unless its replay has it or will (`wentLive`: the
   * offset the replay went live at during the login).
   */
  const lateShout = (ws: Browser, channel: number, message: string, offset: number, wentLive: number | undefined): void => {
    const source = String(channel);
    const { replay, v2 } = ws.data;
    if (replay?.pending(source)) return replay.heard(source, offset);
    if (wentLive !== undefined && offset <= wentLive) return;
    const floor = joining.get(channel)?.get(ws);
    if (floor !== undefined) {
      if (offset <= floor) return;
      unlistJoining(ws, channel);
      ws.subscribe(channelTopic(channel, v2));
    }
    if (!ws.isSubscribed(channelTopic(channel, v2))) return;
    watchdog.observe(ws.send(v2 ? numbered(source, offset, message) : message));
    metrics.delivered++;
  };

  /**
   * A v2 browser starts following a channel it joined at `at`: it is told so (`#at`), and a shout up to
   * `at` that reached this node during its login (lateShouts) is not sent: the join came after it.
   */
  const startAt = (ws: Browser, channel: number, at: number): void => {
    watchdog.observe(ws.send(atNotice([[String(channel), at]])));
    if (admitted?.ws === ws) admitted.wentLive.set(channel, Math.max(at, admitted.wentLive.get(channel) ?? 0));
  };

  const gap = (ws: Browser, source: string): void => {
    ws.send(gapNotice(source));
    metrics.gaps++;
    events.emit(Event.gap(ws.data.user, source));
  };

  /** Makes one browser follow exactly these channels. */
  const follow = (ws: Browser, channels: number[]): void => {
    const wanted = new Set(channels.map((channel) => channelTopic(channel, ws.data.v2)));
    for (const topic of ws.subscriptions) if (isChannelTopic(topic) && !wanted.has(topic)) ws.unsubscribe(topic);
    const { replay } = ws.data;
    if (replay) {
      const kept = new Set(channels.map(String));
      for (const source of replay.sources()) if (source !== WHISPER_SOURCE && !kept.has(source)) replay.drop(source);
    }
    for (const channel of channels) if (!replay?.pending(String(channel))) ws.subscribe(channelTopic(channel, ws.data.v2));
  };

  /**
   * A whisper to a user with several browsers here: each is sent it unless it is still replaying its
   * whispers (it hears of it instead) or its replay sent it already. The v2 text is made once.
   */
  const toEach = (user: number, message: string, offset: number): void => {
    let v2Text: string | undefined;
    eachOf(user, (ws) => {
      ws.data.replay?.heard(WHISPER_SOURCE, offset);
      if (offset <= (ws.data.whisperFloor ?? 0) || !ws.isSubscribed(userTopic(user, ws.data.v2))) return;
      const text = ws.data.v2 ? (v2Text ??= numbered(WHISPER_SOURCE, offset, message)) : message;
      watchdog.observe(ws.send(text));
    });
  };

  /** Browsers in the channel that are not their user's only one there: [count] counts users, not tabs. */
  const extraIn = (channel: number): number => {
    let extra = 0;
    for (const browsers of sessions.crowded()) {
      let inside = 0;
      for (const ws of browsers) if (ws.isSubscribed(channelTopic(channel, ws.data.v2))) inside++;
      if (inside > 1) extra += inside - 1;
    }
    return extra;
  };

  // At most half the slow-consumer limit, so a replay alone never gets a browser closed as slow (live
  // messages on top may), and at most 1 MiB: a login costs no more than that before the browser reads,
  // and drain events keep a reading browser's replay flowing at full speed with far less.
  const replayBudget = Math.min(REPLAY_BUDGET, Math.floor(options.backpressure / 2));

  const replayTarget = (ws: Browser): ReplayTarget => ({
    send: (text) => void ws.send(text),
    // An SSE stream is handed the message's parts: it would otherwise parse them back out of the
    // numbered text, a copy of a message that may be 64 KB.
    message:
      ws instanceof SseSession
        ? (source, offset, text) => {
            options.replayRate?.charge(ws.data.user, text.length);
            ws.deliver(source, offset, dataLines(text));
          }
        : (source, offset, text) => {
            options.replayRate?.charge(ws.data.user, text.length);
            ws.send(numbered(source, offset, text));
          },
    buffered: () => ws.getBufferedAmount(),
    live(source, offset) {
      if (source === WHISPER_SOURCE) {
        ws.data.whisperFloor = offset;
        return ws.subscribe(userTopic(ws.data.user, ws.data.v2));
      }
      if (admitted?.ws === ws) admitted.wentLive.set(Number(source), offset);
      unlistReplay(Number(source), ws);
      ws.subscribe(channelTopic(Number(source), ws.data.v2));
    },
    liveAfter(source, offset) {
      if (source === WHISPER_SOURCE) return this.live(source, offset);
      unlistReplay(Number(source), ws);
      joinAfter(ws, Number(source), offset);
    },
    gap(source) {
      metrics.gaps++;
      events.emit(Event.gap(ws.data.user, source));
    },
    replayed(count) {
      metrics.replayed += count;
      metrics.delivered += count;
    },
  });

  /** The browser read some of what was queued: its replay, if any, goes on. */
  const drained = (ws: Browser): void => {
    const stream = ws.data.replay;
    if (!stream || ws.data.phase !== "live") return;
    stream.resume();
    if (stream.done) ws.data.replay = undefined;
  };

  const listReplay = (channel: number, ws: Browser): void => {
    const set = replaying.get(channel);
    if (set) set.add(ws);
    else replaying.set(channel, new Set([ws]));
  };

  const unlistReplay = (channel: number, ws: Browser): void => {
    const set = replaying.get(channel);
    if (set?.delete(ws) && set.size === 0) replaying.delete(channel);
  };

  /**
   * Before a shout goes out live: the replays of its channel hear of it, and browsers joining the
   * channel join now if it is past what their replay sent. Forgets browsers no longer replaying.
   */
  const hearShout = (channel: number, offset: number): void => {
    const source = String(channel);
    for (const ws of replaying.get(channel) ?? []) {
      if (ws.data.replay?.pending(source)) ws.data.replay.heard(source, offset);
      else unlistReplay(channel, ws);
    }
    const waiting = joining.get(channel);
    if (!waiting) return;
    for (const [ws, floor] of waiting) {
      if (offset <= floor && ws.data.phase === "live") continue;
      waiting.delete(ws);
      if (ws.data.phase === "live") ws.subscribe(channelTopic(channel, ws.data.v2));
    }
    if (waiting.size === 0) joining.delete(channel);
  };

  /** The browser follows the channel from its first shout after `offset` (hearShout, lateShout). */
  const joinAfter = (ws: Browser, channel: number, offset: number): void => {
    const waiting = joining.get(channel);
    if (waiting) waiting.set(ws, offset);
    else joining.set(channel, new Map([[ws, offset]]));
  };

  /** A browser gone or out of a channel joins it no more. */
  const unlistJoining = (ws: Browser, channel?: number): void => {
    for (const [ch, waiting] of joining) {
      if (channel !== undefined && ch !== channel) continue;
      if (waiting.delete(ws) && waiting.size === 0) joining.delete(ch);
    }
  };

  /** A live browser went away by itself. */
  const ended = (ws: Browser, code: number): boolean => {
    const { user } = ws.data;
    for (const source of ws.data.replay?.sources() ?? []) if (source !== WHISPER_SOURCE) unlistReplay(Number(source), ws);
    if (joining.size > 0) unlistJoining(ws);
    endReplay(ws);
    watchdog.remove(ws);
    if (ws.data.phase !== "live" || !sessions.remove(user, ws)) return false;
    freed(user, ws);
    metrics.sessions = sessions.browsers;
    if (sessions.has(user)) {
      if (debug) log.debug(`user ${user}: one of its browsers disconnected`, { user, code, addr: ws.data.addr });
      return true;
    }
    departed(user);
    if (debug) log.debug(`user ${user}: browser disconnected`, { user, code, addr: ws.data.addr });
    return true;
  };

  /** Closes every logged-in browser with `reason`. */
  const closeAll = (reason: CloseReason): void => {
    for (const user of [...sessions.users()]) for (const ws of sessions.all(user)) release(user, ws, reason);
  };

  return { delivery, admit, ended, closeAll, drained, expel };
}

/** Releases what a replay holds at once: the browser is gone, replaced or being closed. */
function endReplay(ws: Browser): void {
  ws.data.replay?.end();
  ws.data.replay = undefined;
}

/** Bytes of replay unread by a browser before its replay waits for the socket's drain. */
const REPLAY_BUDGET = 1 << 20;

/** A replaced browser with this much unread is one a re-login on a socket that never reads may pile up (closeLive). */
const UNREAD_CUTOFF = 64 * 1024;
/** How long a replaced stream far behind may take to read its way to its close event (SseSession's own bound). */
const FINAL_READ_MS = 60_000;

export function close(ws: Browser, reason: CloseReason): void {
  endReplay(ws);
  ws.data.phase = "closing";
  ws.close(reason.code, reason.reason);
}

function userTopic(user: number, v2: boolean): string {
  return v2 ? `U${user}` : `u${user}`;
}

function channelTopic(channel: number, v2: boolean): string {
  return v2 ? `C${channel}` : `c${channel}`;
}

function isChannelTopic(topic: string): boolean {
  return topic.startsWith("c") || topic.startsWith("C");
}
