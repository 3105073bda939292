// A real TCP relay between a client and a server, for tests that need the network to fail: `cut()`
// drops every relayed connection at once (as a lost network does), `down()` refuses new ones, `up()`
// accepts again on the same port. `freezeOn(text)` stalls a connection from the first chunk the client
// sends that contains `text` (what was sent before still flows, replies included) until `thaw()`.
// `hold()` stops reading from the server (its writes back up) until `release()`.

import type { Socket, TCPSocketListener } from "bun";
import { WriteQueue } from "../src/transport/write-queue.ts";

interface Pair {
  peer: Socket<Pair> | undefined;
  /** Bytes for this socket that it has not taken yet: a TCP write may be partial. */
  out: WriteQueue;
  /** The other side closed: this one ends once `out` is written. */
  ending?: boolean;
  /** Bytes from the client that arrived before the connection to the server was up. */
  early: Uint8Array[];
  /** Bytes from the client held back while the connection is frozen. */
  frozen?: Uint8Array[];
}

export class TcpProxy {
  #listener: TCPSocketListener<Pair> | undefined;
  #sockets = new Set<Socket<Pair>>();
  #port = 0;
  #freezeOn: string | undefined;
  readonly #frozen = new Set<Socket<Pair>>();
  /** The relay's connections to the server, which `hold()` stops reading. */
  readonly #upstream = new Set<Socket<Pair>>();

  constructor(
    readonly targetPort: number,
    readonly host = "127.0.0.1",
  ) {}

  get port(): number {
    return this.#port;
  }

  /** Listens (on a free port the first time, on the same port afterwards). */
  up(): void {
    const sockets = this.#sockets;
    const { host, targetPort } = this;
    const upstream = this.#upstream;
    const freezes = (client: Socket<Pair>, chunk: Uint8Array): boolean => {
      if (client.data.frozen) return true;
      if (this.#freezeOn === undefined || !Buffer.from(chunk).toString("latin1").includes(this.#freezeOn)) return false;
      client.data.frozen = [];
      this.#frozen.add(client);
      return true;
    };
    this.#listener = Bun.listen<Pair>({
      hostname: host,
      port: this.#port,
      socket: {
        open(client) {
          client.data = { peer: undefined, early: [], out: new WriteQueue() };
          sockets.add(client);
          void Bun.connect<Pair>({
            hostname: host,
            port: targetPort,
            socket: {
              open(server) {
                server.data = { peer: client, early: [], out: new WriteQueue() };
                sockets.add(server);
                upstream.add(server);
                client.data.peer = server;
                for (const chunk of client.data.early) relay(server, chunk);
              },
              data: (server, chunk) => server.data.peer && relay(server.data.peer, chunk),
              drain: drained,
              close(server) {
                sockets.delete(server);
                upstream.delete(server);
                if (server.data.peer) endAfterWrites(server.data.peer);
              },
              error: () => undefined,
            },
          }).catch(() => client.end());
        },
        data(client, chunk) {
          if (freezes(client, chunk)) client.data.frozen!.push(new Uint8Array(chunk));
          else if (client.data.peer) relay(client.data.peer, chunk);
          else client.data.early.push(new Uint8Array(chunk));
        },
        drain: drained,
        close(client) {
          sockets.delete(client);
          if (client.data.peer) endAfterWrites(client.data.peer);
        },
        error: () => undefined,
      },
    });
    this.#port = this.#listener.port;
  }

  /** Stalls the connection whose client next sends `text` (that chunk included), as a hung server would. */
  freezeOn(text: string): void {
    this.#freezeOn = text;
  }

  /** Sends on what the frozen connections held back, and freezes nothing more. */
  thaw(): void {
    this.#freezeOn = undefined;
    for (const client of this.#frozen) {
      for (const chunk of client.data.frozen ?? []) if (client.data.peer) relay(client.data.peer, chunk);
      client.data.frozen = undefined;
    }
    this.#frozen.clear();
  }

  /**
   * Stops reading what the server sends on every relayed connection (client to server still flows): a
   * client on a network that stopped carrying bytes down. The server's writes back up into its own queue.
   */
  hold(): void {
    for (const server of this.#upstream) server.pause();
  }

  /** Reads from the server again after `hold()`. */
  release(): void {
    for (const server of this.#upstream) server.resume();
  }

  /** Stops accepting: new connections are refused. Relayed ones stay until `cut()`. */
  down(): void {
    this.#listener?.stop(false);
    this.#listener = undefined;
  }

  /** Drops every relayed connection abruptly, both sides. */
  cut(): void {
    for (const socket of this.#sockets) socket.terminate();
    this.#sockets.clear();
  }

  stop(): void {
    this.down();
    this.cut();
  }
}

/** Writes to `to` what it takes now and queues the rest (copied: Bun may reuse a read buffer). */
function relay(to: Socket<Pair>, chunk: Uint8Array): void {
  to.data.out.write(to, new Uint8Array(chunk));
}

function drained(socket: Socket<Pair>): void {
  if (socket.data.out.flush(socket) && socket.data.ending) socket.end();
}

/** The other side closed: end this one, after what is queued for it. */
function endAfterWrites(socket: Socket<Pair>): void {
  if (socket.data.out.empty) socket.end();
  else socket.data.ending = true;
}
