// The composition root: the one place that knows every part and wires them together.

import type { Server, TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import { formatAddress, type Address } from "./config/address.ts";
import type { Config } from "./config/schema.ts";
import { EventHub } from "./core/events.ts";
import { createExecutor } from "./core/executor.ts";
import { createLogin } from "./core/login.ts";
import { CloseCode } from "./protocol/codes.ts";
import { checkHealth } from "./observe/health.ts";
import { Metrics } from "./observe/metrics.ts";
import { renderPrometheus } from "./observe/prometheus.ts";
import { MemoryState } from "./state/memory.ts";
import type { State } from "./state/state.ts";
import { listenControl } from "./transport/control.ts";
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
  stop(): Promise<void>;
}

/** A startup failure worth one line and exit code 1 (an address in use), not a stack trace. */
export class StartupError extends Error {
  override name = "StartupError";
}

export async function startServer(config: Config, log: ConsolaInstance): Promise<Webtalk> {
  const state: State = new MemoryState();
  const events = new EventHub();
  const metrics = new Metrics();
  let pub: PublicServer | undefined;
  let control: TCPSocketListener<unknown> | undefined;
  let admin: Server<undefined> | undefined;
  try {
    // The login check and the executor both need the public side's Delivery, which exists only once
    // the public server does: the login function is therefore handed over through a late binding.
    let login: ReturnType<typeof createLogin> = () => ({ ok: false, why: "unknown" });
    pub = bind("public", config.public, () =>
      servePublic({
        hostname: config.public.host,
        port: config.public.port,
        path: config.path,
        loginTimeoutMs: config.loginTimeout * 1000,
        login: (token) => login(token),
        upstream: config.upstream,
        maxMessage: config.maxMessage,
        events,
        metrics,
        log: log.withTag("public"),
      }),
    );
    login = createLogin({ state, delivery: pub.delivery, duplicate: config.duplicate });
    const controlLog = log.withTag("control");
    const execute = createExecutor({ state, delivery: pub.delivery, heldLimit: config.queue, events, metrics, log: controlLog });
    control = bind("private", config.private, () =>
      listenControl({
        hostname: config.private.host,
        port: config.private.port,
        execute,
        events,
        listenerBuffer: config.listenerBuffer,
        metrics,
        log: controlLog,
      }),
    ) as TCPSocketListener<unknown>;
    const { delivery, server: publicServer } = pub;
    const adminAt = config.admin;
    if (adminAt !== "off") {
      admin = bind("admin", adminAt, () =>
        serveAdmin({
          hostname: adminAt.host,
          port: adminAt.port,
          health: () => checkHealth({ state, version: pkg.version, startedAt: metrics.startedAt }),
          metrics: async () =>
            renderPrometheus({
              metrics,
              version: pkg.version,
              browsersConnected: publicServer.pendingWebSockets,
              usersOnline: delivery.onlineCount(),
              counts: await state.counts(),
              listeners: events.listeners,
            }),
          log: log.withTag("admin"),
        }),
      );
    }
  } catch (error) {
    control?.stop(true);
    await pub?.stop(CloseCode.shuttingDown);
    throw error;
  }

  const publicAddress = { host: config.public.host, port: pub.server.port ?? config.public.port };
  const privateAddress = { host: config.private.host, port: control.port };
  const publicUrl = `ws://${formatAddress(publicAddress)}${config.path}`;
  const adminAddress = admin && config.admin !== "off" ? { host: config.admin.host, port: admin.port ?? 0 } : undefined;
  // Logged before the other two: test/process.ts takes the private line as "all addresses are known".
  if (adminAddress) log.info(`admin   http://${formatAddress(adminAddress)} (/healthz, /metrics)`);
  log.info(`public  ${publicUrl}`);
  log.info(`private tcp://${formatAddress(privateAddress)}`);

  const running = { pub, control, admin };
  return {
    public: publicAddress,
    private: privateAddress,
    admin: adminAddress,
    publicUrl,
    async stop() {
      running.control.stop(true);
      void running.admin?.stop(true);
      await running.pub.stop(CloseCode.shuttingDown);
      await state.close();
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
