// The composition root: the one place that knows every part and wires them together.

import type { TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import { formatAddress, type Address } from "./config/address.ts";
import type { Config } from "./config/schema.ts";
import { EventHub } from "./core/events.ts";
import { createExecutor } from "./core/executor.ts";
import { createLogin } from "./core/login.ts";
import { CloseCode } from "./protocol/codes.ts";
import { Metrics } from "./observe/metrics.ts";
import { MemoryState } from "./state/memory.ts";
import type { State } from "./state/state.ts";
import { browserClientFiles } from "./client/browser/assets.ts";
import { startDemo, type Demo } from "./demo/demo.ts";
import { firstOf, serveStatic } from "./transport/assets.ts";
import { listenControl } from "./transport/control.ts";
import { servePublic, type PublicServer } from "./transport/public.ts";

export interface Webtalk {
  /** The addresses actually bound (port 0 resolved). */
  public: Address;
  private: Address;
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
  let demo: Demo | undefined;
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
        // The demo's pages exist only once it has connected to the control port, which is opened below.
        http: firstOf(serveStatic(browserClientFiles()), (request, url) => demo?.http(request, url)),
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
    if (config.demo) {
      const address = { host: loopback(config.private.host), port: control.port };
      demo = await startDemo({ control: address, path: config.path, log: log.withTag("demo") });
    }
  } catch (error) {
    control?.stop(true);
    await pub?.stop(CloseCode.shuttingDown);
    throw error;
  }

  const publicAddress = { host: config.public.host, port: pub.server.port ?? config.public.port };
  const privateAddress = { host: config.private.host, port: control.port };
  const publicUrl = `ws://${formatAddress(publicAddress)}${config.path}`;
  log.info(`public  ${publicUrl}`);
  log.info(`private tcp://${formatAddress(privateAddress)}`);

  const running = { pub, control };
  return {
    public: publicAddress,
    private: privateAddress,
    publicUrl,
    async stop() {
      await demo?.stop();
      running.control.stop(true);
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

/** The address to reach a listener on: loopback when it listens on every interface. */
function loopback(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "::1";
  return host;
}
