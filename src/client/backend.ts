// The backend client: `import { connect } from "webtalk/client"`, on Bun or Node.js.
// One control connection; every command is a promise, and commands are pipelined.

import type { ConnectionOptions as TlsOptions } from "node:tls";
import { parseAddress, type Address } from "../config/address.ts";
import { ControlConnection, type ReconnectOptions } from "./connection.ts";
import { eventIterator, parseEvent, type EventStream, type WebtalkEvent } from "./events.ts";

export { WebtalkConnectionError, type ReconnectOptions } from "./connection.ts";
export type { WebtalkEvent } from "./events.ts";

export interface ConnectOptions {
  /** Default: the host of `WEBTALK_PRIVATE`, else 127.0.0.1. */
  host?: string;
  /** Default: the port of `WEBTALK_PRIVATE`, else 12344. */
  port?: number;
  /** Sent as `[auth] SECRET` ahead of everything else on every connection (the server's `--secret`). */
  secret?: string;
  /** Connect with TLS (the server's `--private-tls`): true, or node:tls options such as `{ ca }`. */
  tls?: boolean | TlsOptions;
  /** Reconnect after the connection drops (the default), with jittered exponential delays; false to stay dropped. */
  reconnect?: false | ReconnectOptions;
  /** Told when the connection drops (to log it, say); commands asked for meanwhile wait for the reconnection. */
  onDisconnect?: () => void;
  /** Told when a dropped connection is back. */
  onReconnect?: () => void;
}

/** The server answered `[error] …`: `reason` is the text after `[error] `. */
export class WebtalkError extends Error {
  override name = "WebtalkError";
  constructor(
    readonly command: string,
    readonly reason: string,
  ) {
    super(`${command.length > 60 ? `${command.slice(0, 60)}…` : command}: ${reason}`);
  }
}

export interface NewUser {
  id: number;
  salt: string;
  /** `ID!SALT`, what the browser logs in with. */
  token: string;
}

export interface ChannelCount {
  members: number;
  online: number;
}

const DEFAULT_ADDRESS = { host: "127.0.0.1", port: 12344 };

/** Connects to webtalk's control port; rejects when the first connection (or its `[auth]`) fails. */
export async function connect(options: ConnectOptions = {}): Promise<WebtalkClient> {
  const { host, port } = controlAddress(options, process.env);
  let auth: Promise<string> | undefined;
  const connection: ControlConnection = new ControlConnection({
    host,
    port,
    tls: options.tls === true ? {} : options.tls || undefined,
    reconnect: options.reconnect ?? {},
    onEvent: (payload) => client.dispatch(parseEvent(payload)),
    onConnect: (reconnected) => {
      // Authentication, then `[listen]` again if it was on, go out ahead of anything queued meanwhile.
      const greeting: string[] = [];
      if (options.secret !== undefined) greeting.push(`[auth] ${options.secret}`);
      if (client.listening) greeting.push("[listen]");
      const replies = connection.greet(greeting);
      // A reconnection's replies are not awaited by anyone: a dropped connection retries them anyway.
      for (const reply of replies) reply.catch(() => undefined);
      auth = options.secret === undefined ? undefined : replies[0];
      if (!reconnected) return;
      client.dispatch({ type: "reconnected" });
      options.onReconnect?.();
    },
    onDisconnect: () => options.onDisconnect?.(),
  });
  const client = new WebtalkClient(connection);
  await connection.dial();
  try {
    if (auth) expectOk("[auth]", await auth);
  } catch (error) {
    // Nobody holds this client: without closing it, it would go on reconnecting with the wrong secret.
    await connection.close();
    throw error;
  }
  return client;
}

/** Where to connect: the options, then `WEBTALK_PRIVATE` (as the server reads it), then 127.0.0.1:12344. */
export function controlAddress(options: ConnectOptions, env: Record<string, string | undefined>): Address {
  const fallback = env.WEBTALK_PRIVATE ? parseAddress(env.WEBTALK_PRIVATE) : DEFAULT_ADDRESS;
  // A server listening on every interface is reached on loopback.
  const host = options.host ?? (fallback.host === "0.0.0.0" || fallback.host === "::" ? "127.0.0.1" : fallback.host);
  return { host, port: options.port ?? fallback.port };
}

/** A connected backend. Helpers reject with `WebtalkError` on `[error]`, `WebtalkConnectionError` on a lost connection. */
export class WebtalkClient {
  #connection: ControlConnection;
  #streams = new Set<EventStream>();
  #listen: Promise<string> | undefined;

  constructor(connection: ControlConnection) {
    this.#connection = connection;
  }

  /** Sends any command (`[name] data`) and resolves with the data after `[ok] `. */
  async command(raw: string): Promise<string> {
    if (!raw.startsWith("[")) throw new TypeError(`not a command: ${JSON.stringify(raw.slice(0, 40))}`);
    return expectOk(raw, await this.#connection.request(raw));
  }

  async newUser(): Promise<NewUser> {
    const token = await this.command("[newuser]");
    const bang = token.indexOf("!");
    return { id: Number(token.slice(0, bang)), salt: token.slice(bang + 1), token };
  }

  /** Resolves "sent" when the user's browser is connected, "queued" when the message is held for its next login. */
  async whisper(user: number, text: string): Promise<"sent" | "queued"> {
    const reply = await this.command(`[whisper] ${user}!${text}`);
    return reply === "message queued" ? "queued" : "sent";
  }

  async shout(channel: number, text: string): Promise<void> {
    await this.command(`[shout] ${channel}!${text}`);
  }

  async newChannel(): Promise<number> {
    return Number(await this.command("[newchannel]"));
  }

  async killChannel(channel: number): Promise<void> {
    await this.command(`[killchannel] ${channel}`);
  }

  async join(channel: number, user: number): Promise<void> {
    await this.command(`[join] ${channel}!${user}`);
  }

  async leave(channel: number, user: number): Promise<void> {
    await this.command(`[leave] ${channel}!${user}`);
  }

  /** Deletes the user: its browser is closed with 4004 and its ID stops working. */
  async kill(user: number): Promise<void> {
    await this.command(`[killuser] ${user}`);
  }

  /** Closes the user's browser with 4005; the user and its ID stay. */
  async kick(user: number): Promise<void> {
    await this.command(`[kick] ${user}`);
  }

  async store(key: string, value: string): Promise<void> {
    await this.command(`[store] ${key}!${value}`);
  }

  /** The stored value, or "" when the key is absent. */
  async retrieve(key: string): Promise<string> {
    return this.command(`[retrieve] ${key}`);
  }

  async clear(key: string): Promise<void> {
    await this.command(`[clear] ${key}`);
  }

  async ping(): Promise<void> {
    await this.command("[ping]");
  }

  async online(user: number): Promise<boolean> {
    return (await this.command(`[online] ${user}`)) === "1";
  }

  async count(channel: number): Promise<ChannelCount> {
    const [members, online] = (await this.command(`[count] ${channel}`)).split("!");
    return { members: Number(members), online: Number(online) };
  }

  /** One page of a channel's members, in ID order, starting after `after`. */
  async members(channel: number, after?: number): Promise<number[]> {
    const data = await this.command(after === undefined ? `[members] ${channel}` : `[members] ${channel}!${after}`);
    return data === "" ? [] : data.split(",").map(Number);
  }

  async stats(): Promise<Record<string, string>> {
    const data = await this.command("[stats]");
    return Object.fromEntries(data.split(" ").filter(Boolean).map((pair) => splitOnce(pair, "=")));
  }

  /**
   * Presence and upstream events, in arrival order. The first call sends `[listen]` (again after every
   * reconnection, which is reported as a `reconnected` event: events during the gap are lost); each
   * `[listen]` is answered first by an `epoch` event, whose change means the server lost the IDs.
   * Each iterator buffers what it has not consumed yet; end it with `break` or `return()`.
   */
  events(): AsyncIterableIterator<WebtalkEvent> {
    this.#listen ??= this.#connection.request("[listen]");
    const listen = this.#listen;
    const { iterator, stream } = eventIterator(
      listen.then((reply) => void expectOk("[listen]", reply)),
      () => this.#streams.delete(stream),
    );
    this.#streams.add(stream);
    return iterator;
  }

  /** Waits for the replies to every command already sent, says goodbye and closes; ends every `events()`. */
  async close(): Promise<void> {
    await this.#connection.close();
    for (const stream of this.#streams) stream.end();
  }

  /** @internal */
  get listening(): boolean {
    return this.#listen !== undefined;
  }

  /** @internal */
  dispatch(event: WebtalkEvent): void {
    for (const stream of this.#streams) stream.push(event);
  }
}

function expectOk(command: string, reply: string): string {
  if (reply.startsWith("[ok] ")) return reply.slice(5);
  throw new WebtalkError(command, reply.replace(/^\[error\] /, ""));
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}
