import type { Socket, TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import type { EventHub } from "../core/events.ts";
import type { Execute } from "../core/executor.ts";
import type { Metrics } from "../observe/metrics.ts";
import { createWindowedWarn } from "../observe/windowed-warn.ts";
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
 * Connections waiting to authenticate have a pool of their own, so they never take the slots of
 * authenticated backends, and a newcomer is never refused: past MAX_UNAUTHENTICATED_BURST a new one
 * closes the oldest waiting one. That burst size is large so that a backend that sends `[auth]` at once
 * is read before strangers connecting meanwhile could push it out (the kernel hands over accepted
 * connections in batches, before their first bytes are read); each sweep then trims the pool back to
 * MAX_UNAUTHENTICATED, oldest first. Memory per waiting connection is small: no frame of more than
 * MAX_AUTH_FRAME bytes is held before authentication.
 */
export const MAX_UNAUTHENTICATED = 64;
export const MAX_UNAUTHENTICATED_BURST = 1024;
const DRAIN_POLL_MS = 20;

/** The private port: framed commands over TCP, one reply per frame, in order. */
export function listenControl(options: ControlOptions): ControlServer {
  const { metrics, log, authTimeoutMs, frameTimeoutMs } = options;
  const sockets = new Set<Socket<ControlConnection>>();
  /** Connections still authenticating, oldest first, per remote address. */
  const waiting = new Map<string, Set<ControlConnection>>();
  let waitingCount = 0;
  const stopWaiting = (conn: ControlConnection): void => {
    const mine = waiting.get(conn.remoteAddress);
    if (!mine?.delete(conn)) return;
    waitingCount--;
    if (mine.size === 0) waiting.delete(conn.remoteAddress);
  };

  const admit = (conn: ControlConnection): boolean => {
    stopWaiting(conn);
    if (metrics.controlConnections >= options.maxConnections) {
      log.warn(`control connection from ${conn.remoteAddress} refused: ${options.maxConnections} already open`, { addr: conn.remoteAddress });
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
    closing: stopWaiting,
    authFailed: createWindowedWarn<string>(
      log,
      (count, addresses, latest) =>
        count === 1 ? `control connection from ${latest}: [auth] failed; closing` : `[auth] failed ${count} times from ${addresses.size} address(es) (latest: ${latest})`,
    ),
  };

  // Waiting to authenticate: when the pool is over `size`, the oldest waiting connections of the address
  // that has the most make room, so a flood from a few addresses pushes out its own connections, not
  // those of a backend elsewhere.
  const trimWaiting = (size: number): void => {
    while (waitingCount > size) {
      let crowded: Set<ControlConnection> | undefined;
      for (const mine of waiting.values()) if (!crowded || mine.size > crowded.size) crowded = mine;
      const oldest = crowded!.values().next().value!;
      oldest.fail(`${waitingCount} connections waiting to authenticate; the oldest of the busiest address makes room`, true);
      stopWaiting(oldest); // already done by fail(); kept so that this loop always ends
    }
  };
  const awaitAuth = (conn: ControlConnection): void => {
    trimWaiting(MAX_UNAUTHENTICATED_BURST - 1);
    let mine = waiting.get(conn.remoteAddress);
    if (!mine) waiting.set(conn.remoteAddress, (mine = new Set()));
    mine.add(conn);
    waitingCount++;
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
        log.debug(`control connection from ${socket.remoteAddress}`, { addr: socket.remoteAddress });
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
        log.debug(`control connection from ${socket.remoteAddress} closed`, { addr: socket.remoteAddress });
      },
      error(socket, error) {
        log.debug(`control connection failed: ${error.message}`, { addr: socket.remoteAddress });
      },
    },
  });

  // One coarse sweep for every timeout: nothing per connection, nothing on the command path.
  const sweep = setInterval(
    () => {
      const now = Date.now();
      trimWaiting(MAX_UNAUTHENTICATED);
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
