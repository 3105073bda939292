// The composition root: the one place that knows every part and wires them together.

import type { Server } from "bun";
import type { ConsolaInstance } from "consola";
import { ClusterDelivery } from "./cluster/cluster-delivery.ts";
import { RedisPresence } from "./cluster/presence.ts";
import { formatAddress, isLoopback, type Address } from "./config/address.ts";
import { ConfigError } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import { readTls } from "./config/tls.ts";
import type { Delivery } from "./core/delivery.ts";
import { EventHub } from "./core/events.ts";
import { createExecutor } from "./core/executor.ts";
import { createLogin, type LoginDecision } from "./core/login.ts";
import { rejectingThrows } from "./core/maybe.ts";
import { MemoryReplay, type ReplayLimits, type ReplayLog } from "./core/replay.ts";
import { newSalt } from "./core/secret.ts";
import { checkHealth } from "./observe/health.ts";
import { Metrics, sumCounters } from "./observe/metrics.ts";
import { renderPrometheus } from "./observe/prometheus.ts";
import { CloseCode } from "./protocol/codes.ts";
import { MemoryState } from "./state/memory.ts";
import { browserClientFiles } from "./client/browser/assets.ts";
import { startDemo, type Demo } from "./demo/demo.ts";
import { RedisLink } from "./state/redis-link.ts";
import { RedisState } from "./state/redis.ts";
import { RedisReplay } from "./state/replay-redis.ts";
import { SqliteReplay } from "./state/replay-sqlite.ts";
import { openDataFile } from "./state/sqlite-file.ts";
import { SqliteState } from "./state/sqlite.ts";
import { BackendUnavailable, type Maybe, type State } from "./state/state.ts";
import { firstOf, serveStatic } from "./transport/assets.ts";
import { listenControl, type ControlServer } from "./transport/control.ts";
import { servePublic, type PublicServer } from "./transport/public.ts";
import { serveAdmin } from "./transport/admin.ts";
import pkg from "../package.json" with { type: "json" };

export interface Webtalk {
  /** The addresses actually bound (port 0 resolved). */
  public: Address;
  private: Address;
  /** The /healthz and /metrics address; undefined with `--admin off`. */
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

/** The state, replay log and browser delivery of one process alone, or of one node of a cluster. */
interface Backends {
  state: State;
  replay: ReplayLog;
  delivery: Delivery;
  counters: () => Maybe<Record<string, number>>;
  /** Starts what must run once the public server exists (the cluster bus, the node's lease). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startServer(config: Config, log: ConsolaInstance): Promise<Webtalk> {
  if (config.data && config.redis) throw new ConfigError("invalid settings: --data and --redis exclude each other (Redis is the durable store of a cluster)");
  const tls = readTls(config);
  const events = new EventHub();
  const metrics = new Metrics();
  const controlLog = log.withTag("control");
  const limits: ReplayLimits = { count: config.replayCount, ageMs: config.replayAge * 1000, bytes: config.replayBytes };
  const redis = config.redis ? await openRedis(config, log) : undefined;

  // The login rules and the cluster need the public side's Delivery, which exists once the public
  // server does; the session hooks likewise exist only in a cluster.
  let login: (message: string, v2: boolean) => Maybe<LoginDecision> = () => ({ ok: false, why: "unknown" });
  // The demo's pages exist once it has connected to the control port, which opens after the public one.
  let demo: Demo | undefined;
  let cluster: ClusterDelivery | undefined;
  const pub: PublicServer = bind("public", config.public, () =>
    servePublic({
      hostname: config.public.host,
      port: config.public.port,
      path: config.path,
      loginTimeoutMs: config.loginTimeout * 1000,
      login: (message, v2) => login(message, v2),
      upstream: config.upstream,
      maxMessage: config.maxMessage,
      backpressure: config.backpressure,
      rules: { origins: config.origins, maxConnections: config.maxConnections },
      tls,
      events,
      metrics,
      http: firstOf(serveStatic(browserClientFiles()), (request, url) => demo?.http(request, url)),
      log: log.withTag("public"),
      sessions: { settled: (user) => cluster?.settled(user), released: (user) => cluster?.released(user) },
    }),
  );

  let backends: Backends;
  try {
    if (redis) {
      backends = await clusterBackends(redis, config, limits, pub, events, metrics, log);
      cluster = backends.delivery as ClusterDelivery;
    } else {
      backends = localBackends(config, limits, pub, events, metrics, log);
    }
    await backends.start();
  } catch (error) {
    await pub.stop(CloseCode.shuttingDown, Date.now());
    redis?.close();
    throw error instanceof BackendUnavailable ? new StartupError(error.message) : error;
  }
  const { state, replay, delivery } = backends;
  // A state call that throws (a full disk) becomes a rejected promise: the transports have one failure path.
  login = rejectingThrows(createLogin({ state, delivery, replay, duplicate: config.duplicate }));
  const execute = rejectingThrows(createExecutor({
    state,
    delivery,
    heldLimit: config.queue,
    replay,
    counters: backends.counters,
    secret: config.secret,
    metrics,
    log: controlLog,
  }));

  let control: ControlServer | undefined;
  let admin: Server<undefined> | undefined;
  try {
    control = bind("private", config.private, () =>
      listenControl({
        hostname: config.private.host,
        port: config.private.port,
        execute,
        events,
        listenerBuffer: config.listenerBuffer,
        authRequired: config.secret !== "",
        maxConnections: config.maxControlConnections,
        tls: config.privateTls ? tls : undefined,
        metrics,
        log: controlLog,
      }),
    );
    if (config.demo) {
      demo = await startDemo({
        control: { host: loopback(config.private.host), port: control.port },
        secret: config.secret,
        // Over TLS the demo trusts exactly this server's own certificate, whatever name it carries.
        tls: config.privateTls && tls ? { ca: tls.cert, checkServerIdentity: () => undefined } : undefined,
        path: config.path,
        log: log.withTag("demo"),
      });
    }
  } catch (error) {
    await control?.stop(Date.now());
    await pub.stop(CloseCode.shuttingDown, Date.now());
    await backends.close();
    throw error;
  }

  const adminAt = config.admin;
  if (adminAt !== "off") {
    try {
      const reports = adminReports(state, pub, events, metrics);
      admin = bind("admin", adminAt, () =>
        serveAdmin({ hostname: adminAt.host, port: adminAt.port, ...reports, log: log.withTag("admin") }),
      );
    } catch (error) {
      await control.stop(Date.now());
      await pub.stop(CloseCode.shuttingDown, Date.now());
      await backends.close();
      throw error;
    }
  }

  const publicAddress = { host: config.public.host, port: pub.server.port ?? config.public.port };
  const privateAddress = { host: config.private.host, port: control.port };
  const publicUrl = `${tls ? "wss" : "ws"}://${formatAddress(publicAddress)}${config.path}`;
  const adminAddress = admin && adminAt !== "off" ? { host: adminAt.host, port: admin.port ?? adminAt.port } : undefined;
  // Logged before the other two: test/process.ts takes the private line as "all addresses are known".
  if (adminAddress) log.info(`admin   http://${formatAddress(adminAddress)} (/healthz, /metrics)`);
  if (config.secret === "" && !isLoopback(config.private.host)) {
    log.warn(`the control port listens on ${config.private.host} without --secret: anyone who reaches it controls webtalk`);
  }
  log.info(`public  ${publicUrl}`);
  log.info(`private ${config.privateTls ? "tls" : "tcp"}://${formatAddress(privateAddress)}`);

  return {
    public: publicAddress,
    private: privateAddress,
    admin: adminAddress,
    publicUrl,
    metrics,
    async stop() {
      const deadline = Date.now() + config.shutdownTimeout * 1000;
      try {
        void admin?.stop(true);
        await demo?.stop();
        await control.stop(deadline);
        await pub.stop(CloseCode.shuttingDown, deadline);
      } finally {
        await backends.close();
      }
    },
  };
}

/** One process alone: state in memory, or in a SQLite file with --data (StateOpenError when it cannot be used). */
function localBackends(
  config: Config,
  limits: ReplayLimits,
  pub: PublicServer,
  events: EventHub,
  metrics: Metrics,
  log: ConsolaInstance,
): Backends {
  if (!config.data) {
    const state = new MemoryState({ heldBytes: config.queueBytes });
    return {
      state,
      replay: new MemoryReplay(limits),
      delivery: pub.delivery,
      counters: () => metrics.counters(events.listeners),
      start: async () => {},
      close: async () => state.close(),
    };
  }
  const started = performance.now();
  const db = openDataFile(config.data, { sync: config.dataSync });
  const state = new SqliteState(db, log.withTag("data"));
  const replay = new SqliteReplay(db, limits);
  const { users, channels, held } = state.counts();
  const ms = (performance.now() - started).toFixed(0);
  log.info(`data    ${config.data}: ${users} users, ${channels} channels, ${held} held (opened in ${ms} ms, sync ${config.dataSync})`);
  return {
    state,
    replay,
    delivery: pub.delivery,
    counters: () => metrics.counters(events.listeners),
    start: async () => {},
    close: async () => {
      replay.close();
      state.close();
    },
  };
}

async function clusterBackends(
  redis: RedisLink,
  config: Config,
  limits: ReplayLimits,
  pub: PublicServer,
  events: EventHub,
  metrics: Metrics,
  log: ConsolaInstance,
): Promise<Backends> {
  const prefix = config.redisPrefix;
  const state = await RedisState.open(redis, prefix);
  const replay = await RedisReplay.open(redis, prefix, limits);
  const presence = new RedisPresence(redis, prefix, newSalt().slice(0, 12), config.lease * 1000, {
    users: () => pub.delivery.users(),
    stats: () => metrics.counters(events.listeners),
  });
  const delivery = new ClusterDelivery({
    redis,
    prefix,
    presence,
    local: pub.delivery,
    channelsOf: (user) => state.channelsOf(user),
    events,
    metrics,
    log: log.withTag("cluster"),
  });
  return {
    state,
    replay,
    delivery,
    counters: async () => sumCounters(await presence.nodeStats()),
    async start() {
      await delivery.start();
      await presence.start();
      log.info(`cluster node ${presence.nodeId} on Redis, key prefix ${prefix}`);
    },
    async close() {
      await presence.stop();
      redis.close();
    },
  };
}

async function openRedis(config: Config, log: ConsolaInstance): Promise<RedisLink> {
  const redis = new RedisLink({ url: config.redis, timeoutMs: 2000, log: log.withTag("redis") });
  try {
    await redis.open();
  } catch (error) {
    throw new StartupError((error as Error).message);
  }
  return redis;
}

/** What /healthz and /metrics report: this node's figures, and the state's counts while it answers. */
function adminReports(state: State, pub: PublicServer, events: EventHub, metrics: Metrics) {
  return {
    health: () => checkHealth({ state, version: pkg.version, startedAt: metrics.startedAt }),
    metrics: async () =>
      renderPrometheus({
        metrics,
        version: pkg.version,
        browsersConnected: pub.server.pendingWebSockets,
        usersOnline: await pub.delivery.onlineCount(),
        // Metrics matter most while the backend is away: its counts are left out then, not the scrape.
        counts: await Promise.resolve()
          .then(() => state.counts())
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
    throw error;
  }
}

/** The address to reach a listener on: loopback when it listens on every interface. */
function loopback(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "::1";
  return host;
}
