// The composition root: the one place that knows every part and wires them together.

import { ReplayRate } from "./core/replay-rate.ts";
import type { ConsolaInstance } from "consola";
import { formatAddress, isLoopback, type Address } from "./config/address.ts";
import { ConfigError } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import { readTls } from "./config/tls.ts";
import { EventHub } from "./core/events.ts";
import { createExecutor } from "./core/executor.ts";
import { createLogin, type LoginDecision } from "./core/login.ts";
import { rejectingThrows } from "./core/maybe.ts";
import { checkHealth, notServing, type Health, type NotServing } from "./observe/health.ts";
import { Metrics } from "./observe/metrics.ts";
import { renderPrometheus } from "./observe/prometheus.ts";
import { CloseCode } from "./protocol/codes.ts";
import { browserClientFiles } from "./client/browser/assets.ts";
import { startDemo, type Demo } from "./demo/demo.ts";
import { BackendUnavailable, type Maybe, type State } from "./state/state.ts";
import { openBackends, type Backends } from "./backends.ts";
import { firstOf, serveStatic } from "./transport/assets.ts";
import { listenControl } from "./transport/control.ts";
import { servePublic, type PublicServer } from "./transport/public.ts";
import { serveAdmin } from "./transport/admin.ts";
import pkg from "../package.json" with { type: "json" };

export interface Webtalk {
  /** The addresses actually bound (port 0 resolved). */
  public: Address;
  private: Address;
  /** The /healthz, /readyz and /metrics address; undefined with `--admin off`. */
  admin: Address | undefined;
  /** e.g. ws://127.0.0.1:12345/webtalk */
  publicUrl: string;
  metrics: Metrics;
  /** Graceful: stops accepting, answers pending commands, closes browsers with 1001; bounded by --shutdown-timeout. */
  stop(): Promise<void>;
}

/** A startup failure worth one line and exit code 1 (an address in use), not a stack trace. */
export class StartupError extends Error {
  override name = "StartupError";
}

export async function startServer(config: Config, log: ConsolaInstance): Promise<Webtalk> {
  if (config.data && config.redis) {
    throw new ConfigError("invalid settings: --data and --redis exclude each other (Redis is the durable store of a cluster)");
  }
  const tls = readTls(config);
  const events = new EventHub();
  const metrics = new Metrics();
  const controlLog = log.withTag("control");
  // What has been started so far, stopped in reverse order when a later part fails to start.
  const undo: (() => unknown)[] = [];

  // The login rules, the cluster hooks and the demo's pages exist only once the parts they need do:
  // the public server hands its calls to them through these late bindings. Until the state is open a
  // login cannot be judged: it is "try again later" (1013), never a final refusal.
  let login: (message: string, v2: boolean) => Maybe<LoginDecision> = () => Promise.reject(new BackendUnavailable("starting"));
  let sessions: Backends["sessions"];
  let demo: Demo | undefined;
  // The open state while the server serves; else what it is doing instead. The admin address answers
  // from the start (503 until the state is open, and again from the stop on), so an operator or a load
  // balancer can tell a slow start from a dead process, and a draining one from a ready one.
  let serving: State | NotServing = "starting";
  // What replays may send per user: the sessions charge it, the login refuses resumes past it.
  const replayRate = new ReplayRate();
  try {
    const pub: PublicServer = bind("public", config.public, () =>
      servePublic({
        hostname: config.public.host,
        port: config.public.port,
        path: config.path,
        loginTimeoutMs: config.loginTimeout * 1000,
        ssePing: config.ssePing,
        login: (message, v2) => login(message, v2),
        replayRate,
        upstream: config.upstream,
        maxMessage: config.maxMessage,
        maxMessageRate: config.maxMessageRate,
        backpressure: config.backpressure,
        rules: { origins: config.origins, maxConnections: config.maxConnections },
        trustedProxies: config.trustedProxies,
        tls,
        events,
        metrics,
        http: firstOf(serveStatic(browserClientFiles()), (request, url) => demo?.http(request, url)),
        log: log.withTag("public"),
        sessions: {
          settled: (user) => sessions?.settled(user),
          released: (user) => sessions?.released(user),
          elsewhere: (user) => sessions?.elsewhere?.(user) ?? false,
          admitting: (user, session) => sessions?.admitting?.(user, session) ?? true,
          closed: (user, session) => sessions?.closed?.(user, session),
        },
        sessionLimit: { limit: config.sessions, duplicate: config.duplicate },
      }),
    );
    undo.push(() => pub.stop(CloseCode.shuttingDown, Date.now()));

    const adminAt = config.admin;
    const reports = adminReports(() => serving, pub, events, metrics);
    const admin =
      adminAt === "off"
        ? undefined
        : bind("admin", adminAt, () => serveAdmin({ hostname: adminAt.host, port: adminAt.port, ...reports, log: log.withTag("admin") }));
    undo.push(() => admin?.stop(true));
    const adminAddress = admin && adminAt !== "off" ? { host: adminAt.host, port: admin.port ?? adminAt.port } : undefined;
    if (adminAddress) log.info(`admin   http://${formatAddress(adminAddress)} (/livez, /readyz, /healthz, /metrics)`);

    const backends = await openBackends({ config, local: pub.delivery, events, metrics, log });
    undo.push(() => backends.close());
    await backends.start();
    sessions = backends.sessions;
    const { state, replay, delivery, numbered } = backends;
    // A state call that throws (a full disk) becomes a rejected promise: the transports have one failure path.
    login = rejectingThrows(createLogin({ state, delivery, replay, duplicate: config.duplicate, heldLimit: config.queue, sessions: config.sessions, replayRate }));
    const execute = rejectingThrows(
      createExecutor({
        state,
        delivery,
        heldLimit: config.queue,
        replay,
        numbered,
        counters: backends.counters,
        secret: config.secret,
        metrics,
        log: controlLog,
        eventsReady: () => events.ready(),
        reportSessions: config.sessions > 1,
      }),
    );

    const control = bind("private", config.private, () =>
      listenControl({
        hostname: config.private.host,
        port: config.private.port,
        execute,
        events,
        listenerBuffer: config.listenerBuffer,
        authRequired: config.secret !== "",
        maxConnections: config.maxControlConnections,
        authTimeoutMs: config.authTimeout * 1000,
        frameTimeoutMs: config.frameTimeout * 1000,
        tls: config.privateTls ? tls : undefined,
        metrics,
        log: controlLog,
      }),
    );
    undo.push(() => control.stop(Date.now()));

    if (config.demo) {
      demo = await startDemo({
        control: { host: loopback(config.private.host), port: control.port },
        secret: config.secret,
        // Over TLS the demo trusts exactly this server's own certificate, whatever name it carries.
        tls: config.privateTls && tls ? { ca: tls.cert, checkServerIdentity: () => undefined } : undefined,
        path: config.path,
        log: log.withTag("demo"),
      });
      undo.push(() => demo?.stop());
    }

    const publicAddress = { host: config.public.host, port: pub.server.port ?? config.public.port };
    const privateAddress = { host: config.private.host, port: control.port };
    const publicUrl = `${tls ? "wss" : "ws"}://${formatAddress(publicAddress)}${config.path}`;
    // The admin line came first: test/process.ts takes the private line as "all addresses are known".
    if (config.secret === "" && !isLoopback(config.private.host)) {
      log.warn(`the control port listens on ${config.private.host} without --secret: anyone who reaches it controls webtalk`);
    }
    log.info(`public  ${publicUrl}`);
    log.info(`private ${config.privateTls ? "tls" : "tcp"}://${formatAddress(privateAddress)}`);
    serving = state;

    return {
      public: publicAddress,
      private: privateAddress,
      admin: adminAddress,
      publicUrl,
      metrics,
      async stop() {
        // Not ready first, ports still open: a load balancer polling /readyz takes this instance out
        // before its connections go. The admin port stays up until the very end.
        serving = "stopping";
        if (config.drainDelay > 0) {
          log.info(`not ready; the ports close in ${config.drainDelay}s (--drain-delay)`);
          await Bun.sleep(config.drainDelay * 1000);
        }
        const deadline = Date.now() + config.shutdownTimeout * 1000;
        try {
          await demo?.stop();
          await control.stop(deadline);
          await pub.stop(CloseCode.shuttingDown, deadline);
        } finally {
          await backends.close();
          void admin?.stop(true);
        }
      },
    };
  } catch (error) {
    for (const step of undo.reverse()) await step();
    throw error instanceof BackendUnavailable ? new StartupError(error.message) : error;
  }
}

/**
 * What /healthz (and /readyz) and /metrics report: this node's figures, and the state's counts while it
 * answers. `serving` is the open state while the server serves, else what it is doing instead.
 */
function adminReports(serving: () => State | NotServing, pub: PublicServer, events: EventHub, metrics: Metrics) {
  const health = (): Promise<Health> => {
    const state = serving();
    if (typeof state === "string") return Promise.resolve(notServing(state, pkg.version, metrics.startedAt));
    return checkHealth({ state, version: pkg.version, startedAt: metrics.startedAt });
  };
  const counts = () => {
    const state = serving();
    return typeof state === "string" ? undefined : state.counts();
  };
  return {
    health,
    metrics: async () =>
      renderPrometheus({
        metrics,
        version: pkg.version,
        browsersConnected: pub.server.pendingWebSockets,
        usersOnline: await pub.delivery.onlineCount(),
        // Metrics matter most while the backend is away: its counts are left out then, not the scrape.
        counts: await Promise.resolve()
          .then(counts)
          .catch(() => undefined),
        listeners: events.listeners,
      }),
  };
}

function bind<T>(name: string, address: Address, start: () => T): T {
  try {
    return start();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EADDRINUSE") throw new StartupError(`${name} address ${formatAddress(address)} is already in use`);
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EACCES") {
      throw new StartupError(`cannot listen on ${name} address ${formatAddress(address)}: ${code}`);
    }
    // Anything else the listen refuses (a host that does not resolve: Bun says "Failed to listen at
    // HOST" with no code, or EINVAL) is still the operator's address: one line, not a stack trace.
    const why = code ?? ((error as Error).message ?? String(error)).split("\n")[0];
    throw new StartupError(`cannot listen on ${name} address ${formatAddress(address)}: ${why} (does the host resolve to an address of this machine?)`);
  }
}

/** The address to reach a listener on: loopback when it listens on every interface. */
function loopback(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "::1";
  return host;
}
