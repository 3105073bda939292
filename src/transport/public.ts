import type { Server, ServerWebSocket } from "bun";
import type { ConsolaInstance } from "consola";
import type { Delivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import type { LoginDecision } from "../core/login.ts";
import type { Metrics } from "../observe/metrics.ts";
import { CloseCode, Event, type CloseReason } from "../protocol/codes.ts";
import type { Maybe } from "../state/state.ts";

export interface PublicOptions {
  hostname: string;
  port: number;
  path: string;
  loginTimeoutMs: number;
  login: (token: string) => Maybe<LoginDecision>;
  /** Forward what logged-in browsers send as `[message]` events (off: ignore it, as the original). */
  upstream: boolean;
  /** Largest message a browser may send, in bytes; larger closes with 1009. */
  maxMessage: number;
  events: EventHub;
  metrics: Metrics;
  log: ConsolaInstance;
}

/** Per-browser data, typed and set at upgrade. */
interface Peer {
  phase: "pending" | "verifying" | "live" | "closing";
  user: number;
  deadline: number;
}

export type Browser = ServerWebSocket<Peer>;

/** The public side: Bun's WebSocket server, and the Delivery that reaches its browsers. */
export interface PublicServer {
  server: Server<Peer>;
  delivery: Delivery;
  /** Closes every browser with `reason` and stops listening. */
  stop(reason: CloseReason): Promise<void>;
}

/** A browser's first message is `ID!SALT`; nothing longer can be one. */
const MAX_LOGIN_BYTES = 256;
/** Bytes queued for one browser before it counts as not reading and is disconnected. */
const BACKPRESSURE_LIMIT = 4 << 20;
/** Seconds of silence before Bun pings a browser, and closes it if the ping goes unanswered. */
const IDLE_TIMEOUT_S = 60;

/** Starts the WebSocket server. Channels and users are native topics, so fan-out never loops in JS. */
export function servePublic(options: PublicOptions): PublicServer {
  const { hostname, port, path, loginTimeoutMs, login, upstream, maxMessage, events, metrics, log } = options;
  const sessions = new Map<number, Browser>();
  const pending = new Set<Browser>();

  /** Ends a user's session now, so the backend hears `[offline]` before anything that follows. */
  const release = (user: number, ws: Browser, reason: CloseReason): void => {
    sessions.delete(user);
    events.emit(Event.offline(user));
    close(ws, reason);
  };

  const admit = (ws: Browser, decision: LoginDecision): void => {
    // Not verifying any more: the browser left, or broke the rules and was closed (and counted) then.
    if (ws.data.phase !== "verifying") return void log.debug(`browser ${ws.remoteAddress} closed during login`);
    if (!decision.ok) {
      metrics.logins[decision.why === "duplicate" ? "duplicate" : "failed"]++;
      log.debug(`browser ${ws.remoteAddress}: login refused (${decision.why})`);
      const reason = decision.why === "duplicate" ? CloseCode.replaced : CloseCode.loginFailed;
      return close(ws, reason);
    }
    const { user } = decision;
    metrics.logins.ok++;
    const older = sessions.get(user);
    if (older) {
      log.debug(`user ${user}: newer login replaces the connected browser`);
      release(user, older, CloseCode.replaced);
    }
    ws.data.phase = "live";
    ws.data.user = user;
    sessions.set(user, ws);
    // Held messages go out before the subscriptions exist, so nothing newer can overtake them.
    for (const message of decision.held) ws.send(message);
    metrics.delivered += decision.held.length;
    ws.subscribe(userTopic(user));
    for (const channel of decision.channels) ws.subscribe(channelTopic(channel));
    events.emit(Event.online(user));
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
    fetch(request, srv) {
      const url = new URL(request.url);
      if (url.pathname !== path) return new Response("not found\n", { status: 404 });
      const data: Peer = { phase: "pending", user: 0, deadline: Date.now() + loginTimeoutMs };
      if (srv.upgrade(request, { data })) return undefined;
      return new Response("this is a WebSocket endpoint\n", { status: 426, headers: { Upgrade: "websocket" } });
    },
    websocket: {
      maxPayloadLength: maxMessage,
      backpressureLimit: BACKPRESSURE_LIMIT,
      closeOnBackpressureLimit: true,
      idleTimeout: IDLE_TIMEOUT_S,
      sendPings: true,
      perMessageDeflate: false,
      open(ws) {
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
        const decision = login(message);
        if (decision instanceof Promise) {
          decision.then(
            (d) => admit(ws, d),
            (error: unknown) => {
              log.error("login failed:", error);
              close(ws, CloseCode.loginFailed);
            },
          );
        } else admit(ws, decision);
      },
      close(ws) {
        pending.delete(ws);
        const { user } = ws.data;
        if (ws.data.phase === "live" && sessions.get(user) === ws) {
          sessions.delete(user);
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

  const delivery: Delivery = {
    isOnline: (user) => sessions.has(user),
    onlineCount: () => sessions.size,
    onlineIn: (channel) => server.subscriberCount(channelTopic(channel)),
    toUser: (user, message) => void server.publish(userTopic(user), message),
    toChannel(channel, message) {
      const topic = channelTopic(channel);
      const recipients = server.subscriberCount(topic);
      if (recipients > 0) server.publish(topic, message);
      return recipients;
    },
    subscribe: (user, channel) => void sessions.get(user)?.subscribe(channelTopic(channel)),
    unsubscribe: (user, channel) => void sessions.get(user)?.unsubscribe(channelTopic(channel)),
    disconnect(user, reason) {
      const ws = sessions.get(user);
      if (ws) release(user, ws, reason);
    },
  };

  async function stop(reason: CloseReason): Promise<void> {
    clearInterval(sweep);
    for (const ws of pending) close(ws, reason);
    for (const [user, ws] of sessions) release(user, ws, reason);
    await server.stop(true);
  }

  return { server, delivery, stop };
}

function close(ws: Browser, reason: CloseReason): void {
  ws.data.phase = "closing";
  ws.close(reason.code, reason.reason);
}

function userTopic(user: number): string {
  return `u${user}`;
}

function channelTopic(channel: number): string {
  return `c${channel}`;
}
