import type { Server, ServerWebSocket } from "bun";
import type { ConsolaInstance } from "consola";
import type { LocalDelivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import type { LoginDecision } from "../core/login.ts";
import type { Metrics } from "../observe/metrics.ts";
import { CloseCode, Event, type CloseReason } from "../protocol/codes.ts";
import { numbered, V2_PROTOCOL, WHISPER_SOURCE } from "../protocol/resume.ts";
import { BackendUnavailable, type Maybe } from "../state/state.ts";
import type { HttpHandler } from "./assets.ts";
import { refuseUpgrade, type UpgradeRules } from "./upgrade-gate.ts";
import { createWatchdog } from "./watchdog.ts";

export interface PublicOptions {
  hostname: string;
  port: number;
  path: string;
  loginTimeoutMs: number;
  login: (message: string, v2: boolean) => Maybe<LoginDecision>;
  /** Forward what logged-in browsers send as `[message]` events (off: ignore it, as the original). */
  upstream: boolean;
  /** Largest message a browser may send, in bytes; larger closes with 1009. */
  maxMessage: number;
  /** Bytes queued for a browser before it is closed as a slow consumer (4006). */
  backpressure: number;
  rules: UpgradeRules;
  /** PEM certificate and key: serve wss:// and https://. */
  tls?: { cert: string; key: string };
  events: EventHub;
  metrics: Metrics;
  /** Plain HTTP requests on other paths (the browser client, the demo); unanswered ones get 404. */
  http?: HttpHandler;
  log: ConsolaInstance;
  /** Told when a login is decided (admitted or not) and when a user's browser here goes away. */
  sessions?: { settled(user: number): void; released(user: number): void };
}

/** Per-browser data, typed and set at upgrade. */
interface Peer {
  phase: "pending" | "verifying" | "live" | "closing";
  user: number;
  deadline: number;
  /** Chose the `webtalk.v2` subprotocol: numbered messages, notices, resumable. */
  v2: boolean;
}

export type Browser = ServerWebSocket<Peer>;

/** The public side: Bun's WebSocket server, and the Delivery that reaches its browsers. */
export interface PublicServer {
  server: Server<Peer>;
  delivery: LocalDelivery;
  /** Stops accepting, closes every browser with `reason`, and waits for them until `deadline` (ms epoch). */
  stop(reason: CloseReason, deadline: number): Promise<void>;
}

/** A browser's first message is `ID!SALT`; nothing longer can be one. */
const MAX_LOGIN_BYTES = 256;
/**
 * Bun's own hard cap is this many times the slow-consumer limit: past it Bun closes the socket itself
 * rather than drop a message, should a burst outrun the watchdog within one turn of the event loop.
 */
const HARD_LIMIT_FACTOR = 4;
/** Seconds of silence before Bun pings a browser, and closes it if the ping goes unanswered. */
const IDLE_TIMEOUT_S = 60;

/** Starts the WebSocket server. Channels and users are native topics, so fan-out never loops in JS. */
export function servePublic(options: PublicOptions): PublicServer {
  const { hostname, port, path, loginTimeoutMs, login, upstream, maxMessage, events, metrics, http, log } = options;
  const sessions = new Map<number, Browser>();
  const pending = new Set<Browser>();
  let open = 0;
  const { promise: allClosed, resolve: markAllClosed } = Promise.withResolvers<void>();
  let stopping = false;

  const watchdog = createWatchdog(
    () => sessions.values(),
    options.backpressure,
    (ws, buffered) => {
      metrics.slowConsumersDisconnected++;
      log.warn(`user ${ws.data.user}: not reading (${buffered} bytes queued); disconnecting it`);
      release(ws.data.user, ws, CloseCode.slowConsumer);
    },
  );

  const hooks = options.sessions;

  /** Ends a user's session now, so the backend hears `[offline]` before anything that follows. */
  const retire = (user: number, ws: Browser, reason: CloseReason): void => {
    sessions.delete(user);
    events.emit(Event.offline(user));
    close(ws, reason);
  };

  /**
   * Ends it, and the user is no longer online on this node. The cluster hears of it before the event
   * is raised, so a backend that hears `[offline]` and asks `[online]` gets 0.
   */
  const release = (user: number, ws: Browser, reason: CloseReason): void => {
    hooks?.released(user);
    retire(user, ws, reason);
  };

  const admit = (ws: Browser, decision: LoginDecision): void => {
    try {
      enter(ws, decision);
    } finally {
      if (decision.ok) hooks?.settled(decision.user);
    }
  };

  const enter = (ws: Browser, decision: LoginDecision): void => {
    if (!decision.ok) {
      // Counted unless the browser was closed meanwhile: it left, or broke the rules and was counted then.
      if (ws.data.phase === "verifying") metrics.logins[decision.why === "duplicate" ? "duplicate" : "failed"]++;
      log.debug(`browser ${ws.remoteAddress}: login refused (${decision.why})`);
      const reason = decision.why === "duplicate" ? CloseCode.replaced : CloseCode.loginFailed;
      return close(ws, reason);
    }
    const { user } = decision;
    if (ws.data.phase !== "verifying") {
      log.debug(`user ${user}: browser left during login`);
      hooks?.released(user);
      return;
    }
    metrics.logins.ok++;
    const older = sessions.get(user);
    if (older) {
      log.debug(`user ${user}: newer login replaces the connected browser`);
      retire(user, older, CloseCode.replaced);
    }
    ws.data.phase = "live";
    ws.data.user = user;
    sessions.set(user, ws);
    // The catch-up goes out before the subscriptions exist, so nothing newer can overtake it.
    const { catchUp } = decision;
    for (const message of catchUp.messages) watchdog.observe(ws.send(message));
    metrics.delivered += catchUp.messages.length;
    metrics.replayed += catchUp.replayed;
    metrics.gaps += catchUp.gaps.length;
    const { v2 } = ws.data;
    ws.subscribe(userTopic(user, v2));
    for (const channel of decision.channels) ws.subscribe(channelTopic(channel, v2));
    events.emit(Event.online(user));
    for (const source of catchUp.gaps) events.emit(Event.gap(user, source));
    log.debug(`user ${user}: logged in`);
  };

  const refuse = (ws: Browser, why: string): void => {
    metrics.logins.failed++;
    log.debug(`browser ${ws.remoteAddress}: login refused (${why})`);
    close(ws, CloseCode.loginFailed);
  };

  const server = Bun.serve<Peer>({
    hostname,
    port,
    tls: options.tls,
    fetch(request, srv) {
      const url = new URL(request.url);
      if (url.pathname !== path) return http?.(request, url) ?? new Response("not found\n", { status: 404 });
      const refusal = refuseUpgrade(request, open, options.rules);
      if (refusal) return refusal;
      const v2 = wantsV2(request);
      const data: Peer = { phase: "pending", user: 0, deadline: Date.now() + loginTimeoutMs, v2 };
      const headers = v2 ? { "Sec-WebSocket-Protocol": V2_PROTOCOL } : undefined;
      if (srv.upgrade(request, { data, headers })) return undefined;
      return new Response("this is a WebSocket endpoint\n", { status: 426, headers: { Upgrade: "websocket" } });
    },
    websocket: {
      maxPayloadLength: maxMessage,
      backpressureLimit: options.backpressure * HARD_LIMIT_FACTOR,
      closeOnBackpressureLimit: true,
      idleTimeout: IDLE_TIMEOUT_S,
      sendPings: true,
      perMessageDeflate: false,
      open(ws) {
        open++;
        pending.add(ws);
        log.debug(`browser ${ws.remoteAddress} connected`);
      },
      message(ws, message) {
        if (ws.data.phase === "live") {
          if (upstream && typeof message === "string") events.emit(Event.message(ws.data.user, message));
          return;
        }
        if (ws.data.phase !== "pending") {
          // A second message while the login is being checked is not allowed.
          if (ws.data.phase === "verifying") refuse(ws, "second message during login");
          return;
        }
        pending.delete(ws);
        if (typeof message !== "string" || Buffer.byteLength(message) > MAX_LOGIN_BYTES) {
          return refuse(ws, "not a login message");
        }
        ws.data.phase = "verifying";
        const decision = login(message, ws.data.v2);
        if (decision instanceof Promise) {
          decision.then(
            (d) => admit(ws, d),
            (error: unknown) => {
              if (error instanceof BackendUnavailable) return close(ws, CloseCode.tryAgainLater);
              log.error("login failed:", error);
              close(ws, CloseCode.loginFailed);
            },
          );
        } else admit(ws, decision);
      },
      close(ws) {
        if (--open === 0 && stopping) markAllClosed();
        pending.delete(ws);
        const { user } = ws.data;
        if (ws.data.phase === "live" && sessions.get(user) === ws) {
          sessions.delete(user);
          hooks?.released(user);
          events.emit(Event.offline(user));
          log.debug(`user ${user}: browser disconnected`);
        } else log.debug(`browser ${ws.remoteAddress} disconnected`);
        ws.data.phase = "closing";
      },
    },
  });

  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const ws of pending) {
        if (ws.data.deadline <= now) {
          pending.delete(ws);
          metrics.logins.timeout++;
          log.debug(`browser ${ws.remoteAddress}: login timeout`);
          close(ws, CloseCode.loginTimeout);
        }
      }
    },
    Math.max(20, Math.min(1000, loginTimeoutMs / 4)),
  );

  const delivery: LocalDelivery = {
    isOnline: (user) => sessions.has(user),
    onlineCount: () => sessions.size,
    onlineIn: (channel) =>
      server.subscriberCount(channelTopic(channel, false)) + server.subscriberCount(channelTopic(channel, true)),
    toUser(user, message, offset) {
      const ws = sessions.get(user);
      if (!ws) return;
      const text = ws.data.v2 ? numbered(WHISPER_SOURCE, offset, message) : message;
      watchdog.observe(server.publish(userTopic(user, ws.data.v2), text));
    },
    toChannel(channel, message, offset) {
      // Each protocol has its own topic: the v2 prefix is built once per message, never per subscriber.
      const plain = server.subscriberCount(channelTopic(channel, false));
      const resumable = server.subscriberCount(channelTopic(channel, true));
      if (plain > 0) watchdog.observe(server.publish(channelTopic(channel, false), message));
      if (resumable > 0) watchdog.observe(server.publish(channelTopic(channel, true), numbered(String(channel), offset, message)));
      return plain + resumable;
    },
    subscribe(user, channel) {
      const ws = sessions.get(user);
      ws?.subscribe(channelTopic(channel, ws.data.v2));
    },
    unsubscribe(user, channel) {
      const ws = sessions.get(user);
      ws?.unsubscribe(channelTopic(channel, ws.data.v2));
    },
    disconnect(user, reason) {
      const ws = sessions.get(user);
      if (ws) release(user, ws, reason);
    },
    // One node: the session map is the whole truth, and admit() replaces a local browser itself.
    claim: () => undefined,
    follow(user, channels) {
      const ws = sessions.get(user);
      if (!ws) return;
      const wanted = new Set(channels.map((channel) => channelTopic(channel, ws.data.v2)));
      for (const topic of ws.subscriptions) if (isChannelTopic(topic) && !wanted.has(topic)) ws.unsubscribe(topic);
      for (const topic of wanted) ws.subscribe(topic);
    },
    users: () => sessions.keys(),
  };

  async function stop(reason: CloseReason, deadline: number): Promise<void> {
    clearInterval(sweep);
    stopping = true;
    void server.stop(false);
    for (const ws of pending) close(ws, reason);
    for (const [user, ws] of sessions) release(user, ws, reason);
    if (open > 0) await untilDeadline(allClosed, deadline);
    await server.stop(true);
  }

  return { server, delivery, stop };
}

async function untilDeadline(promise: Promise<void>, deadline: number): Promise<void> {
  let timer: Timer | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
  await Promise.race([promise, late]);
  clearTimeout(timer);
}

function close(ws: Browser, reason: CloseReason): void {
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

function wantsV2(request: Request): boolean {
  const offered = request.headers.get("sec-websocket-protocol");
  return offered !== null && offered.split(",").some((p) => p.trim() === V2_PROTOCOL);
}
