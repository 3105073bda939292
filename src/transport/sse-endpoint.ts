import type { Server } from "bun";
import type { ConsolaInstance } from "consola";
import type { LoginDecision } from "../core/login.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { Cidr } from "../config/cidr.ts";
import { CloseCode, type CloseReason } from "../protocol/codes.ts";
import { resumeLogin, sseNotice, sseRetry } from "../protocol/sse.ts";
import { BackendUnavailable, StateWriteFailed, type Maybe } from "../state/state.ts";
import type { Browser, Peer } from "./browser-sessions.ts";
import { clientAddress } from "./client-address.ts";
import { fullBucket } from "./message-rate.ts";
import { SseSession } from "./sse-session.ts";
import type { SseTopics } from "./sse-topics.ts";
import { refuseUpgrade, type UpgradeRules } from "./upgrade-gate.ts";

export interface SseEndpointOptions {
  login: (message: string, v2: boolean) => Maybe<LoginDecision>;
  /** The browser sessions' own: an SSE browser is admitted, closed and ended like a WebSocket one. */
  admit(browser: Browser, decision: LoginDecision): void;
  ended(browser: Browser, code: number): boolean;
  close(browser: Browser, reason: CloseReason): void;
  /** The browser read what was queued: its replay goes on (a WebSocket's drain). */
  drained(browser: Browser): void;
  topics: SseTopics;
  rules: UpgradeRules;
  /** WebSocket browsers connected now: --max-connections counts both transports. */
  webSockets(): number;
  /** Unread bytes past which a stream is cut at once. */
  hardLimit: number;
  /** Milliseconds between keep-alive comments. */
  pingMs: number;
  trustedProxies: readonly Cidr[];
  metrics: Metrics;
  log: ConsolaInstance;
}

/** `ID!SALT` is never longer; a longer `login` parameter is refused unread. */
const MAX_TOKEN_BYTES = 256;
/** A Last-Event-ID is a v2 login's position list (MAX_V2_LOGIN_BYTES); a longer one is ignored. */
const MAX_LAST_EVENT_ID = 16_384;

/**
 * `GET {path}/events?login=ID!SALT`: a browser on Server-Sent Events. The login is checked before the
 * response starts, so a wrong one is a 401 and no stream; an admitted browser gets `200 text/event-stream`
 * and is then a session like a WebSocket v2 browser (same login, limits, presence and events).
 */
export function createSseEndpoint(options: SseEndpointOptions) {
  const { login, admit, ended, close, topics, rules, metrics, log } = options;
  /** Every stream from its request on, logged in or not: counted against --max-connections. */
  const streams = new Set<SseSession>();

  // One timer for every stream: each hears a comment at least every --sse-ping.
  const pinger = setInterval(() => {
    for (const session of streams) session.ping();
  }, options.pingMs);

  const end = (session: SseSession, code: number): void => {
    streams.delete(session);
    metrics.browserCloses.add(code);
    if (!ended(session, code)) log.debug("sse browser disconnected", { code, addr: session.data.addr });
  };

  // Past the hard limit within one turn, before the watchdog looked: a slow consumer all the same.
  const overflowed = (session: SseSession, buffered: number): void => {
    metrics.slowConsumersDisconnected++;
    log.warn(`user ${session.data.user}: not reading its event stream (${buffered} bytes queued); disconnecting it`, {
      user: session.data.user,
      addr: session.data.addr,
    });
  };

  /**
   * After the login was carried out: a failed one is a 401 (or, asked with `closeEvent`, a stream of
   * just its close event), anything else the stream (perhaps ending at once).
   */
  const respond = (session: SseSession, origin: string | null, closeEvent: boolean): Response => {
    if (session.closedWith === CloseCode.loginFailed.code && !closeEvent) return unauthorized(origin);
    return new Response(session.stream, { status: 200, headers: { ...streamHeaders, ...cors(origin) } });
  };

  const failed = (session: SseSession, error: unknown): void => {
    // As for a WebSocket login: the state's trouble is not the token's, so the browser is told to retry.
    if (!(error instanceof BackendUnavailable) && !(error instanceof StateWriteFailed)) log.error("login failed:", error);
    close(session, CloseCode.tryAgainLater);
  };

  function handle(request: Request, url: URL, server: Server<Peer>): Response | Promise<Response> {
    const origin = request.headers.get("origin");
    if (request.method === "OPTIONS") return preflight(request, rules);
    if (request.method !== "GET") return new Response("use GET\n", { status: 405, headers: { Allow: "GET, OPTIONS" } });
    const refusal = refuseUpgrade(request, options.webSockets() + streams.size, rules);
    if (refusal) return withCors(refusal, refusal.status === 403 ? null : origin);
    const token = url.searchParams.get("login") ?? "";
    // EventSource cannot read a status: a client that wants to know why it was refused asks for the event.
    const closeEvent = url.searchParams.has("closeEvent");
    if (token === "" || Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
      metrics.logins.failed++;
      return closeEvent ? loginFailedStream(origin) : unauthorized(origin);
    }
    // The browser's automatic reconnect sends the last event's id; a page may pass it as a parameter.
    const lastEventId = request.headers.get("last-event-id") ?? url.searchParams.get("lastEventId");
    const message = resumeLogin(token, lastEventId && lastEventId.length <= MAX_LAST_EVENT_ID ? lastEventId : null);
    // Bun ends HTTP requests idle for 10 s; a stream is kept alive by its comments instead.
    server.timeout(request, 0);
    const addr = clientAddress(server.requestIP(request)?.address ?? "", request.headers.get("x-forwarded-for"), options.trustedProxies);
    const data: Peer = { phase: "verifying", user: 0, addr, deadline: 0, v2: true, rate: fullBucket(0, 0), claimed: claimedUser(token) };
    const session = new SseSession(data, { topics, hardLimit: options.hardLimit, overflowed, ended: end, drained: options.drained });
    streams.add(session);
    if (message !== token && lastEventId) session.resumeFrom(lastEventId);
    // A browser that leaves while its login is checked is not admitted: the claim is undone (as for a WebSocket).
    request.signal.addEventListener("abort", () => {
      if (session.data.phase === "verifying") close(session, CloseCode.shuttingDown);
    });
    let decision: Maybe<LoginDecision>;
    try {
      decision = login(message, true);
    } catch (error) {
      failed(session, error);
      return respond(session, origin, closeEvent);
    }
    if (!(decision instanceof Promise)) {
      admit(session, decision);
      return respond(session, origin, closeEvent);
    }
    return decision.then(
      (d) => (admit(session, d), respond(session, origin, closeEvent)),
      (error: unknown) => (failed(session, error), respond(session, origin, closeEvent)),
    );
  }

  return {
    handle,
    /** SSE streams open now. */
    count: () => streams.size,
    stop(): void {
      clearInterval(pinger);
      // Those still logging in; the logged-in ones are closed with the other sessions.
      for (const session of streams) if (session.data.phase !== "live") close(session, CloseCode.shuttingDown);
    },
  };
}

const streamHeaders = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  // nginx buffers proxied responses by default, which would hold events back.
  "X-Accel-Buffering": "no",
};

/** Lets a page on an allowed origin read the stream (its origin was checked by refuseUpgrade). */
function cors(origin: string | null): Record<string, string> {
  return origin === null ? {} : { "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", Vary: "Origin" };
}

function withCors(response: Response, origin: string | null): Response {
  for (const [name, value] of Object.entries(cors(origin))) response.headers.set(name, value);
  return response;
}

/** A failed login as events: what a session closed with 4001 writes (retry:, then the close event). */
function loginFailedStream(origin: string | null): Response {
  const { code, reason } = CloseCode.loginFailed;
  return new Response(sseRetry(RETRY_AFTER_REFUSAL_MS) + sseNotice("close", `${code} ${reason}`), {
    status: 200,
    headers: { ...streamHeaders, ...cors(origin) },
  });
}

/** The retry: of a refusal's stream; the client is told the refusal is final anyway. */
const RETRY_AFTER_REFUSAL_MS = 3000;

function unauthorized(origin: string | null): Response {
  return new Response("login failed\n", { status: 401, headers: { "Content-Type": "text/plain", ...cors(origin) } });
}

/** EventSource sends Last-Event-ID on reconnect: a page on another origin may have it preflighted. */
function preflight(request: Request, rules: UpgradeRules): Response {
  const origin = request.headers.get("origin");
  if (origin !== null && rules.origins.length > 0 && !rules.origins.includes(origin)) {
    return new Response("origin not allowed\n", { status: 403 });
  }
  const headers = {
    ...cors(origin),
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control",
    "Access-Control-Max-Age": "600",
  };
  return new Response(null, { status: 204, headers });
}

function claimedUser(token: string): number | undefined {
  const id = Number(/^(\d{1,16})!/.exec(token)?.[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}
