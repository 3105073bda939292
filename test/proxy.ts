// A real TCP relay between a client and a server, for tests that need the network to fail: `cut()`
// drops every relayed connection at once (as a lost network does), `down()` refuses new ones, `up()`
// accepts again on the same port.

import type { Socket, TCPSocketListener } from "bun";

interface Pair {
  peer: Socket<Pair> | undefined;
  /** Bytes from the client that arrived before the connection to the server was up. */
  early: Uint8Array[];
}

export class TcpProxy {
  #listener: TCPSocketListener<Pair> | undefined;
  #sockets = new Set<Socket<Pair>>();
  #port = 0;

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
    this.#listener = Bun.listen<Pair>({
      hostname: host,
      port: this.#port,
      socket: {
        open(client) {
          client.data = { peer: undefined, early: [] };
          sockets.add(client);
          void Bun.connect<Pair>({
            hostname: host,
            port: targetPort,
            socket: {
              open(server) {
                server.data = { peer: client, early: [] };
                sockets.add(server);
                client.data.peer = server;
                for (const chunk of client.data.early) server.write(chunk);
              },
              data: (server, chunk) => void server.data.peer?.write(chunk),
              close(server) {
                sockets.delete(server);
                server.data.peer?.end();
              },
              error: () => undefined,
            },
          }).catch(() => client.end());
        },
        data(client, chunk) {
          if (client.data.peer) client.data.peer.write(chunk);
          else client.data.early.push(new Uint8Array(chunk));
        },
        close(client) {
          sockets.delete(client);
          client.data.peer?.end();
        },
        error: () => undefined,
      },
    });
    this.#port = this.#listener.port;
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
