import type { Server } from "bun";
import type { ReplayRate } from "../core/replay-rate.ts";
import type { ConsolaInstance } from "consola";
import type { LocalDelivery } from "../core/delivery.ts";
import type { EventHub } from "../core/events.ts";
import type { LoginDecision } from "../core/login.ts";
import { debugEnabled } from "../observe/log.ts";
import type { Metrics } from "../observe/metrics.ts";
import { CloseCode, Event, type CloseReason } from "../protocol/codes.ts";
import { V2_PROTOCOL } from "../protocol/resume.ts";
import { BackendUnavailable, StateWriteFailed, type Maybe } from "../state/state.ts";
import { SessionLimitReached } from "../core/session-limit-reached.ts";
import type { HttpHandler } from "./assets.ts";
import { close, createBrowserSessions, type Browser, type Peer, type SessionHooks } from "./browser-sessions.ts";
import { fullBucket, takeMessage } from "./message-rate.ts";
import { ReplacedTabs, tabOf } from "./replaced-tabs.ts";
import { refuseUpgrade, type UpgradeRules } from "./upgrade-gate.ts";
import { clientAddress } from "./client-address.ts";
import { createSseEndpoint } from "./sse-endpoint.ts";
import { SseTopics } from "./sse-topics.ts";
import type { Cidr } from "../config/cidr.ts";

export interface PublicOptions {
  /** What replays may send per user: charged here, checked by the login. */
  replayRate?: ReplayRate;
  hostname: string;
  port: number;
  path: string;
  loginTimeoutMs: number;
  login: (message: string, v2: boolean) => Maybe<LoginDecision>;
  /** Forward what logged-in browsers send as `[message]` events (off: ignore it, as the original). */
  upstream: boolean;
  /** Largest message a browser may send, in bytes; larger closes with 1009. */
  maxMessage: number;
  /** Messages per second a logged-in browser may send (0: unlimited); past it closes with 1008. */
  maxMessageRate: number;
  /** Bytes queued for a browser before it is closed as a slow consumer (4006). */
  backpressure: number;
  rules: UpgradeRules;
  /** Peers whose X-Forwarded-For is believed for the browser's address. */
  trustedProxies?: readonly Cidr[];
  /** PEM certificate and key: serve wss:// and https://. */
  tls?: { cert: string; key: string };
  events: EventHub;
  metrics: Metrics;
  /** Plain HTTP requests on other paths (the browser client, the demo); unanswered ones get 404. */
  http?: HttpHandler;
  log: ConsolaInstance;
  /** Told when a login is decided (admitted or not) and when a user's last browser here goes away. */
  sessions?: SessionHooks;
  /** --sessions and --duplicate: how many browsers a user may have here, and which goes past that. */
  sessionLimit?: { limit: number; duplicate: "replace" | "reject" };
  /** Seconds between the comments that keep an idle SSE stream open (--sse-ping). */
  ssePing?: number;
}

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
 * A webtalk.v2 login carries the last offset of every source the page resumes (`u:12,7:340,…`), so it
 * may be longer: a page that knows many channels must still be able to log in. `/webtalk.js` never
 * sends more (it keeps the most recent sources).
 */
export const MAX_V2_LOGIN_BYTES = 16_384;
/**
 * Bun's own hard cap is this many times the slow-consumer limit: past it Bun closes the socket itself
 * rather than drop a message, should a burst outrun the watchdog within one turn of the event loop.
 */
const HARD_LIMIT_FACTOR = 4;
/** Seconds between an SSE stream's keep-alive comments unless told (--sse-ping). */
const DEFAULT_SSE_PING_S = 25;
/** Seconds of silence before Bun pings a browser, and closes it if the ping goes unanswered. */
const IDLE_TIMEOUT_S = 60;

/** Starts the WebSocket server. Channels and users are native topics, so fan-out never loops in JS. */
export function servePublic(options: PublicOptions): PublicServer {
  const { hostname, port, path, loginTimeoutMs, login, upstream, maxMessage, maxMessageRate, events, metrics, http, log } = options;
  const debug = debugEnabled(log);
  const pending = new Set<Browser>();
  let open = 0;
  const { promise: allClosed, resolve: markAllClosed } = Promise.withResolvers<void>();
  let stopping = false;

  const sse = new SseTopics();
  const replacedTabs = new ReplacedTabs();
  // The Bun server exists only once Bun.serve returns; the sessions reach it through this getter.
  const { delivery, admit, ended, closeAll, drained, expel } = createBrowserSessions(() => server, {
    sse,
    backpressure: options.backpressure,
    events,
    metrics,
    log,
    hooks: options.sessions,
    replayRate: options.replayRate,
    replacedTabs,
    ...options.sessionLimit,
  });

  const sseEndpoint = createSseEndpoint({
    login,
    admit,
    ended,
    close,
    drained,
    topics: sse,
    rules: options.rules,
    webSockets: () => open,
    hardLimit: options.backpressure * HARD_LIMIT_FACTOR,
    pingMs: (options.ssePing ?? DEFAULT_SSE_PING_S) * 1000,
    trustedProxies: options.trustedProxies ?? [],
    metrics,
    log,
  });
  const ssePath = `${path}/events`;

  const refuse = (ws: Browser, why: string): void => {
    metrics.logins.failed++;
    log.debug("browser login refused", { user: ws.data.claimed, reason: why, addr: ws.data.addr });
    close(ws, CloseCode.loginFailed);
  };

  /** The cluster found the user at --sessions under --duplicate reject (session-limit.ts). */
  const refuseOverLimit = (ws: Browser): void => {
    if (ws.data.phase === "verifying") metrics.logins.duplicate++;
    log.debug("browser login refused: session limit", { user: ws.data.claimed, addr: ws.data.addr });
    close(ws, CloseCode.sessionRefused);
  };

  const tooFast = (ws: Browser): void => {
    metrics.tooFastDisconnected++;
    log.warn(`user ${ws.data.user}: more than ${maxMessageRate} messages per second; disconnecting it`, { user: ws.data.user, addr: ws.data.addr });
    expel(ws, CloseCode.tooFast);
  };

  const server = Bun.serve<Peer>({
    hostname,
    port,
    tls: options.tls,
    fetch(request, srv) {
      const url = new URL(request.url);
      if (url.pathname !== path) {
        if (url.pathname === ssePath) return sseEndpoint.handle(request, url, srv);
        return http?.(request, url) ?? new Response("not found\n", { status: 404 });
      }
      const refusal = refuseUpgrade(request, open + sseEndpoint.count(), options.rules);
      if (refusal) return refusal;
      const v2 = wantsV2(request);
      const rate = fullBucket(maxMessageRate, performance.now());
      const addr = clientAddress(srv.requestIP(request)?.address ?? "", request.headers.get("x-forwarded-for"), options.trustedProxies ?? []);
      const data: Peer = { phase: "pending", user: 0, addr, deadline: Date.now() + loginTimeoutMs, v2, rate };
      const tab = tabOf(url);
      if (tab !== undefined) data.tab = tab;
      const headers = v2 ? { "Sec-WebSocket-Protocol": V2_PROTOCOL } : undefined;
      if (srv.upgrade(request, { data, headers })) return undefined;
      return new Response("this is a WebSocket endpoint\n", { status: 426, headers: { Upgrade: "websocket" } });
    },
    websocket: {
      // Room for a v2 login; messages after it are held to --max-message in `message`.
      maxPayloadLength: Math.max(maxMessage, MAX_V2_LOGIN_BYTES),
      backpressureLimit: options.backpressure * HARD_LIMIT_FACTOR,
      closeOnBackpressureLimit: true,
      idleTimeout: IDLE_TIMEOUT_S,
      sendPings: true,
      perMessageDeflate: false,
      open(ws) {
        open++;
        pending.add(ws);
        if (debug) log.debug("browser connected", { addr: ws.data.addr });
      },
      message(ws, message) {
        if (ws.data.phase === "live") {
          // Limited with or without --upstream: ignored messages still cost the event loop a call each.
          if (!takeMessage(ws.data.rate, maxMessageRate, performance.now())) return tooFast(ws);
          if (tooLarge(message, maxMessage)) return expel(ws, CloseCode.tooLarge);
          if (upstream && typeof message === "string") events.emit(Event.message(ws.data.user, message));
          return;
        }
        if (ws.data.phase !== "pending") {
          // A second message while the login is being checked is not allowed.
          if (ws.data.phase === "verifying") refuse(ws, "second message during login");
          return;
        }
        pending.delete(ws);
        if (typeof message !== "string" || Buffer.byteLength(message) > (ws.data.v2 ? MAX_V2_LOGIN_BYTES : MAX_LOGIN_BYTES)) {
          return refuse(ws, "not a login message");
        }
        ws.data.phase = "verifying";
        ws.data.claimed = claimedUser(message);
        // A tab cut when a newer login replaced it: the 4002 it could not read, not a login that would
        // replace the newer one in turn.
        const owed = ws.data.tab !== undefined && ws.data.claimed !== undefined ? replacedTabs.owed(ws.data.claimed, ws.data.tab) : undefined;
        if (owed) {
          metrics.logins.duplicate++;
          log.debug("browser login refused: this tab was replaced", { user: ws.data.claimed, addr: ws.data.addr });
          return close(ws, owed);
        }
        const decision = login(message, ws.data.v2);
        if (decision instanceof Promise) {
          decision.then(
            (d) => admit(ws, d),
            (error: unknown) => {
              if (error instanceof BackendUnavailable) return close(ws, CloseCode.tryAgainLater);
              if (error instanceof SessionLimitReached) return refuseOverLimit(ws);
              // A write that failed (a full disk) is the server's trouble, not the token's: the page
              // tries again later rather than stopping for good. The state has logged the failure.
              if (error instanceof StateWriteFailed) return close(ws, CloseCode.tryAgainLater);
              log.error("login failed:", error);
              // A data file that cannot be written refuses the login (README, "Durable state"). Anything
              // else did not find the token wrong: the state failed (e.g. Redis full, OOM), and 4001
              // would be final for a valid token, so the browser is told to try again later.
              close(ws, error instanceof StateWriteFailed ? CloseCode.loginFailed : CloseCode.tryAgainLater);
            },
          );
        } else admit(ws, decision);
      },
      // Bun answers every ping with a pong by itself: a peer that pings and never reads would pile pongs
      // up where neither the watchdog (it watches sends) nor the rate limit (it counts messages) looks.
      ping(ws) {
        const overRate = !takeMessage(ws.data.rate, maxMessageRate, performance.now());
        if (!overRate && ws.getBufferedAmount() <= options.backpressure) return;
        if (ws.data.phase !== "live") {
          pending.delete(ws);
          return close(ws, overRate ? CloseCode.tooFast : CloseCode.slowConsumer);
        }
        if (overRate) return tooFast(ws);
        metrics.slowConsumersDisconnected++;
        log.warn(`user ${ws.data.user}: not reading its pongs (${ws.getBufferedAmount()} bytes queued); disconnecting it`, { user: ws.data.user, addr: ws.data.addr });
        expel(ws, CloseCode.slowConsumer);
      },
      drain(ws) {
        drained(ws);
      },
      close(ws, code) {
        if (--open === 0 && stopping) markAllClosed();
        pending.delete(ws);
        metrics.browserCloses.add(code);
        if (!ended(ws, code) && debug) log.debug("browser disconnected", { code, addr: ws.data.addr });
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
          log.debug("browser login timeout", { addr: ws.data.addr });
          close(ws, CloseCode.loginTimeout);
        }
      }
    },
    Math.max(20, Math.min(1000, loginTimeoutMs / 4)),
  );

  async function stop(reason: CloseReason, deadline: number): Promise<void> {
    clearInterval(sweep);
    sseEndpoint.stop();
    stopping = true;
    // Resolves once every request is done: an SSE response only when Bun has written its last bytes.
    const requestsDone = server.stop(false);
    for (const ws of pending) close(ws, reason);
    closeAll(reason);
    if (open > 0) await untilDeadline(allClosed, deadline);
    // The streams were ended with their closing comment; cut at once, they would lose it.
    await untilDeadline(requestsDone, deadline);
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

function wantsV2(request: Request): boolean {
  const offered = request.headers.get("sec-websocket-protocol");
  return offered !== null && offered.split(",").some((p) => p.trim() === V2_PROTOCOL);
}

/** Over `max` bytes; a string is measured only when its length allows it (UTF-8 takes ≤ 3 bytes a unit). */
function tooLarge(message: string | Buffer, max: number): boolean {
  if (typeof message !== "string") return message.byteLength > max;
  return message.length * 3 > max && Buffer.byteLength(message) > max;
}

/** The user id a login message names (the digits before its `!`), never its salt; undefined when it names none. */
function claimedUser(message: string): number | undefined {
  const id = Number(/^(\d{1,16})!/.exec(message)?.[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}
