import type { Server, ServerWebSocket } from "bun";
import type { ConsolaInstance } from "consola";
import type { Delivery } from "../core/delivery.ts";
import type { LoginDecision } from "../core/login.ts";
import { CloseCode, type CloseReason } from "../protocol/codes.ts";
import type { Maybe } from "../state/state.ts";
import { UserTable } from "./user-table.ts";

export interface PublicOptions {
  hostname: string;
  port: number;
  path: string;
  loginTimeoutMs: number;
  login: (token: string) => Maybe<LoginDecision>;
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
/** Browser → server messages larger than this close the socket with 1009. */
const MAX_MESSAGE_BYTES = 4096;
/** Bytes queued for one browser before it counts as not reading and is disconnected. */
const BACKPRESSURE_LIMIT = 4 << 20;
/** Seconds of silence before Bun pings a browser, and closes it if the ping goes unanswered. */
const IDLE_TIMEOUT_S = 60;

/** Starts the WebSocket server. Channels and users are native topics, so fan-out never loops in JS. */
export function servePublic({ hostname, port, path, loginTimeoutMs, login, log }: PublicOptions): PublicServer {
  const sessions = new UserTable<Browser>();
  const pending = new Set<Browser>();

  const admit = (ws: Browser, decision: LoginDecision): void => {
    if (!decision.ok) {
      log.debug(`login refused (${decision.why})`);
      const reason = decision.why === "duplicate" ? CloseCode.replaced : CloseCode.loginFailed;
      return close(ws, reason);
    }
    const { user } = decision;
    if (ws.data.phase !== "verifying") {
      log.debug(`user ${user}: browser left during login`);
      return;
    }
    const older = sessions.get(user);
    if (older) {
      log.debug(`user ${user}: newer login replaces the connected browser`);
      sessions.delete(user);
      close(older, CloseCode.replaced);
    }
    ws.data.phase = "live";
    ws.data.user = user;
    sessions.set(user, ws);
    // Held messages go out before the subscriptions exist, so nothing newer can overtake them.
    for (const message of decision.held) ws.send(message);
    ws.subscribe(userTopic(user));
    for (const channel of decision.channels) ws.subscribe(channelTopic(channel));
    log.debug(`user ${user}: logged in`);
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
      maxPayloadLength: MAX_MESSAGE_BYTES,
      backpressureLimit: BACKPRESSURE_LIMIT,
      closeOnBackpressureLimit: true,
      idleTimeout: IDLE_TIMEOUT_S,
      sendPings: true,
      perMessageDeflate: false,
      open(ws) {
        pending.add(ws);
      },
      message(ws, message) {
        if (ws.data.phase !== "pending") {
          // After login the browser only listens; a second message during login is not allowed.
          if (ws.data.phase === "verifying") close(ws, CloseCode.loginFailed);
          return;
        }
        pending.delete(ws);
        if (typeof message !== "string" || Buffer.byteLength(message) > MAX_LOGIN_BYTES) {
          return close(ws, CloseCode.loginFailed);
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
          log.debug(`user ${user}: browser disconnected`);
        }
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
          close(ws, CloseCode.loginTimeout);
        }
      }
    },
    Math.max(20, Math.min(1000, loginTimeoutMs / 4)),
  );

  const delivery: Delivery = {
    isOnline: (user) => sessions.has(user),
    toUser: (user, message) => void server.publish(userTopic(user), message),
    toChannel: (channel, message) => void server.publish(channelTopic(channel), message),
    subscribe: (user, channel) => void sessions.get(user)?.subscribe(channelTopic(channel)),
    unsubscribe: (user, channel) => void sessions.get(user)?.unsubscribe(channelTopic(channel)),
    disconnect(user, reason) {
      const ws = sessions.get(user);
      if (!ws) return;
      sessions.delete(user);
      close(ws, reason);
    },
  };

  async function stop(reason: CloseReason): Promise<void> {
    clearInterval(sweep);
    for (const ws of pending) close(ws, reason);
    for (const ws of sessions.values()) close(ws, reason);
    sessions.clear();
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
