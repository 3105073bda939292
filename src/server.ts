// The composition root: the one place that knows every part and wires them together.

import type { Server } from "bun";
import type { ConsolaInstance } from "consola";
import { formatAddress, isLoopback, type Address } from "./config/address.ts";
import type { Config } from "./config/schema.ts";
import { readTls } from "./config/tls.ts";
import { EventHub } from "./core/events.ts";
import { createExecutor } from "./core/executor.ts";
import { createLogin, type LoginDecision } from "./core/login.ts";
import { MemoryReplay } from "./core/replay.ts";
import { checkHealth } from "./observe/health.ts";
import { Metrics } from "./observe/metrics.ts";
import { renderPrometheus } from "./observe/prometheus.ts";
import { CloseCode } from "./protocol/codes.ts";
import { MemoryState } from "./state/memory.ts";
import type { Maybe, State } from "./state/state.ts";
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

export async function startServer(config: Config, log: ConsolaInstance): Promise<Webtalk> {
  const tls = readTls(config);
  const state: State = new MemoryState({ heldBytes: config.queueBytes });
  const events = new EventHub();
  const metrics = new Metrics();
  const replay = new MemoryReplay({ count: config.replayCount, ageMs: config.replayAge * 1000, bytes: config.replayBytes });
  const controlLog = log.withTag("control");

  // The login rules need the public side's Delivery, which exists once the public server does.
  let login: (message: string, v2: boolean) => Maybe<LoginDecision> = () => ({ ok: false, why: "unknown" });
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
      log: log.withTag("public"),
    }),
  );
  login = createLogin({ state, delivery: pub.delivery, replay, duplicate: config.duplicate });
  const execute = createExecutor({
    state,
    delivery: pub.delivery,
    heldLimit: config.queue,
    replay,
    secret: config.secret,
    events,
    metrics,
    log: controlLog,
  });

  let control: ControlServer;
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
  } catch (error) {
    await pub.stop(CloseCode.shuttingDown, Date.now());
    throw error;
  }

  const adminAt = config.admin;
  if (adminAt !== "off") {
    try {
      admin = bind("admin", adminAt, () =>
        serveAdmin({
          hostname: adminAt.host,
          port: adminAt.port,
          health: () => checkHealth({ state, version: pkg.version, startedAt: metrics.startedAt }),
          metrics: async () =>
            renderPrometheus({
              metrics,
              version: pkg.version,
              browsersConnected: pub.server.pendingWebSockets,
              usersOnline: await pub.delivery.onlineCount(),
              counts: await state.counts(),
              listeners: events.listeners,
            }),
          log: log.withTag("admin"),
        }),
      );
    } catch (error) {
      await control.stop(Date.now());
      await pub.stop(CloseCode.shuttingDown, Date.now());
      throw error;
    }
  }

  const publicAddress = { host: config.public.host, port: pub.server.port ?? config.public.port };
  const privateAddress = { host: config.private.host, port: control.port };
  const publicUrl = `${tls ? "wss" : "ws"}://${formatAddress(publicAddress)}${config.path}`;
  const adminAddress = admin && adminAt !== "off" ? { host: adminAt.host, port: admin.port ?? adminAt.port } : undefined;
  // Logged before the other two: test/process.ts takes the private line as "all addresses are known".
  if (adminAddress) log.info(`admin   http://${formatAddress(adminAddress)} (/healthz, /metrics)`);
  log.info(`public  ${publicUrl}`);
  log.info(`private ${config.privateTls ? "tls" : "tcp"}://${formatAddress(privateAddress)}`);
  if (config.secret === "" && !isLoopback(config.private.host)) {
    log.warn(`the control port listens on ${config.private.host} without --secret: anyone who reaches it controls webtalk`);
  }

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
        await control.stop(deadline);
        await pub.stop(CloseCode.shuttingDown, deadline);
      } finally {
        await state.close();
      }
    },
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
