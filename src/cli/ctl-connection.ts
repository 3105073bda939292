// `webtalk ctl`'s one control connection: framed payloads out, replies back in order, and the
// unsolicited event frames of a `[listen]`ing connection handed aside.

import { createConnection, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { formatAddress, type Address } from "../config/address.ts";
import { encodeFrame, FrameDecoder } from "../protocol/frame.ts";

/** Something went wrong that the operator must hear about: ctl prints the message and exits 1. */
export class CtlFailure extends Error {
  override name = "CtlFailure";
}

/** TLS for a control port started with --private-tls. */
export interface CtlTls {
  /** PEM certificates to trust instead of the system's (a self-signed server's own --tls-cert). */
  ca: string | undefined;
  /** The name the certificate must carry; defaults to the host connected to. */
  serverName: string | undefined;
}

interface Waiter {
  resolve: (reply: string) => void;
  reject: (error: Error) => void;
}

export class CtlConnection {
  /** Resolves when the connection has ended, with why when the server (or the network) ended it. */
  readonly closed: Promise<CtlFailure | undefined>;
  /** Frames that are not replies (`[online] 5`, …), in arrival order. */
  onEvent: (payload: string) => void = () => {};
  #socket: Socket;
  #decoder = new FrameDecoder();
  #text = new TextDecoder();
  #waiting: Waiter[] = [];
  #closing = false;
  #failure: CtlFailure | undefined;
  #ended: (why: CtlFailure | undefined) => void = () => {};

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => (this.#ended = resolve));
    socket.on("data", (chunk: Buffer) => this.#receive(chunk));
    socket.on("error", (error) => this.#end(new CtlFailure(`connection failed: ${error.message}`)));
    socket.on("close", () => this.#end(new CtlFailure("the server closed the connection")));
  }

  /** Connects, or rejects with a CtlFailure that says where it tried and why it could not. */
  static open(address: Address, timeoutMs: number, tls?: CtlTls): Promise<CtlConnection> {
    const where = formatAddress(address);
    return new Promise((resolve, reject) => {
      const { host, port } = address;
      const socket = tls
        ? connectTls({ host, port, ca: tls.ca, servername: tls.serverName ?? (isIP(host) ? undefined : host) })
        : createConnection({ host, port });
      const fail = (why: string) => {
        socket.destroy();
        reject(new CtlFailure(`cannot connect to webtalk at ${where}: ${why}`));
      };
      const timer = setTimeout(() => fail(`no answer within ${timeoutMs / 1000} s (is it running? see --private)`), timeoutMs);
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        fail(error.code === "ECONNREFUSED" ? "connection refused (is it running? see --private)" : error.message);
      });
      socket.once(tls ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        socket.setNoDelay(true);
        resolve(new CtlConnection(socket));
      });
    });
  }

  /** Sends one payload and resolves with its whole reply (`[ok] …` or `[error] …`). */
  request(payload: string, timeoutMs: number): Promise<string> {
    if (this.#failure) return Promise.reject(this.#failure);
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const timer = setTimeout(() => reject(new CtlFailure(`no reply within ${timeoutMs / 1000} s`)), timeoutMs);
    this.#waiting.push({ resolve, reject });
    this.#socket.write(encodeFrame(payload));
    return promise.finally(() => clearTimeout(timer));
  }

  close(): void {
    this.#closing = true;
    this.#socket.end();
  }

  #receive(chunk: Buffer): void {
    for (const frame of this.#decoder.push(chunk)) {
      if (frame.kind !== "payload") {
        // Bytes that are not webtalk frames: most likely a TLS handshake answering plain text.
        return this.#end(new CtlFailure("the server did not answer in webtalk frames (a control port with TLS needs --tls)"));
      }
      const payload = this.#text.decode(frame.bytes);
      // A reply always starts with [ok] or [error]; an event never does.
      if (payload.startsWith("[ok]") || payload.startsWith("[error]")) this.#waiting.shift()?.resolve(payload);
      else this.onEvent(payload);
    }
  }

  #end(why: CtlFailure): void {
    if (this.#failure) return;
    this.#failure = why;
    this.#socket.destroy();
    for (const waiter of this.#waiting.splice(0)) waiter.reject(why);
    this.#ended(this.#closing ? undefined : why);
  }
}
