import type { Socket, TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import type { EventHub } from "../core/events.ts";
import type { Execute } from "../core/executor.ts";
import type { Metrics } from "../observe/metrics.ts";
import { ControlConnection, TOO_MANY_TEXT, type ConnectionContext } from "./control-connection.ts";

export interface ControlOptions {
  hostname: string;
  port: number;
  execute: Execute;
  events: EventHub;
  /** Bytes of memory a listening connection's unsent events may hold before it is cut off. */
  listenerBuffer: number;
  /** When true, a connection's first frame must be `[auth] SECRET` (checked by the executor). */
  authRequired: boolean;
  /** Authenticated connections; beyond it they are refused. */
  maxConnections: number;
  /** With `authRequired`: time a connection has to authenticate before it is closed. */
  authTimeoutMs: number;
  /** Time a frame may take to arrive whole once it began, before its connection is closed. */
  frameTimeoutMs: number;
  tls?: { cert: string; key: string };
  metrics: Metrics;
  log: ConsolaInstance;
}

export interface ControlServer {
  port: number;
  /** Stops accepting; answers what connections already sent, then closes them, by `deadline` (ms epoch). */
  stop(deadline: number): Promise<void>;
}

/**
 * Connections waiting to authenticate, at most: past it a new one closes the oldest of them. They
 * have their own pool so that they never take the slots of authenticated backends, and a newcomer is
 * never refused, so a backend that sends `[auth]` at once gets in whoever else is connecting.
 */
export const MAX_UNAUTHENTICATED = 64;
const DRAIN_POLL_MS = 20;

/** The private port: framed commands over TCP, one reply per frame, in order. */
export function listenControl(options: ControlOptions): ControlServer {
  const { metrics, log, authTimeoutMs, frameTimeoutMs } = options;
  const sockets = new Set<Socket<ControlConnection>>();
  /** Connections still authenticating, oldest first. */
  const unauthenticated = new Set<ControlConnection>();

  const admit = (conn: ControlConnection): boolean => {
    unauthenticated.delete(conn);
    if (metrics.controlConnections >= options.maxConnections) {
      log.warn(`control connection from ${conn.remoteAddress} refused: ${options.maxConnections} already open`);
      return false;
    }
    conn.admitted = true;
    metrics.controlConnections++;
    return true;
  };

  const ctx: ConnectionContext = {
    execute: options.execute,
    events: options.events,
    listenerBuffer: options.listenerBuffer,
    metrics,
    log,
    admit,
    closing: (conn) => void unauthenticated.delete(conn),
  };

  // Waiting to authenticate: the oldest waiting connection makes room when the pool is full.
  const awaitAuth = (conn: ControlConnection): void => {
    if (unauthenticated.size >= MAX_UNAUTHENTICATED) {
      const oldest = unauthenticated.values().next().value!;
      oldest.fail(`${MAX_UNAUTHENTICATED} connections waiting to authenticate; the oldest makes room`, true);
    }
    unauthenticated.add(conn);
  };

  const listener: TCPSocketListener<ControlConnection> = Bun.listen<ControlConnection>({
    hostname: options.hostname,
    port: options.port,
    tls: options.tls,
    socket: {
      open(socket) {
        const conn = new ControlConnection(socket, ctx, options.authRequired);
        socket.data = conn;
        sockets.add(socket);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
        log.debug(`control connection from ${socket.remoteAddress}`);
        if (options.authRequired) return awaitAuth(conn);
        if (!admit(conn)) conn.refuse(TOO_MANY_TEXT);
      },
      data(socket, chunk) {
        socket.data.received(chunk);
      },
      drain(socket) {
        socket.data.drained();
      },
      close(socket) {
        socket.data.closed();
        if (socket.data.admitted) metrics.controlConnections--;
        sockets.delete(socket);
        log.debug(`control connection from ${socket.remoteAddress} closed`);
      },
      error(socket, error) {
        log.debug(`control connection from ${socket.remoteAddress} failed: ${error.message}`);
      },
    },
  });

  // One coarse sweep for every timeout: nothing per connection, nothing on the command path.
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const socket of sockets) socket.data.tick(now, authTimeoutMs, frameTimeoutMs);
    },
    Math.max(20, Math.min(1000, Math.min(authTimeoutMs, frameTimeoutMs) / 4)),
  );
  sweep.unref();

  // Frames a backend sent just before the signal may still be on their way: keep answering until each
  // connection has gone quiet and everything is written, or the deadline passes.
  async function stop(deadline: number): Promise<void> {
    listener.stop(false);
    for (const socket of sockets) socket.data.draining = true;
    while (sockets.size > 0 && Date.now() < deadline) {
      for (const socket of sockets) socket.data.settle();
      await Bun.sleep(DRAIN_POLL_MS);
    }
    clearInterval(sweep);
    listener.stop(true);
  }

  return { port: listener.port, stop };
}
