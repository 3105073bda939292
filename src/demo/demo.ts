// `webtalk --demo`: a live page at `/` and, behind it, a small backend written with webtalk's own
// backend client, connected to this server's control port like any other backend would be.
// DEMO ONLY: `POST /demo/login` creates a user for whoever asks, so it is off unless --demo.

import type { ConnectionOptions as TlsOptions } from "node:tls";
import type { ConsolaInstance } from "consola";
import { connect, type WebtalkClient } from "../client/backend.ts";
import { formatAddress, type Address } from "../config/address.ts";
import { firstOf, serveStatic, type HttpHandler } from "../transport/assets.ts";
// With type "text" Bun hands over each file's source as a string, inside the compiled binary too.
import pageSource from "./index.html" with { type: "text" };
// @ts-expect-error a plain browser script with no declarations: TypeScript has no type for it, here it is text.
import scriptSource from "./page.js" with { type: "text" };

export interface Demo {
  http: HttpHandler;
  stop(): Promise<void>;
}

/** The global channel every new user is in. */
const EVERYONE = 1;
/** Longest chat line the demo relays, in UTF-16 units. */
const MAX_SAY = 500;

export interface DemoOptions {
  /** The control port to connect to (a loopback address when the server listens on every interface). */
  control: Address;
  /** The server's --secret, "" for none. */
  secret: string;
  /** TLS options when the control port uses TLS. */
  tls: TlsOptions | undefined;
  /** The WebSocket path pages connect to. */
  path: string;
  log: ConsolaInstance;
}

/** Starts the demo's backend on the control port; its pages are served by the returned handler. */
export async function startDemo({ control, secret, tls, path, log }: DemoOptions): Promise<Demo> {
  const wt = await connect({ host: control.host, port: control.port, secret: secret || undefined, tls });
  // Salts of the users this demo created, so only a page's own token can speak as that user.
  const salts = new Map<number, string>();
  const online = new Set<number>();
  const presence = watchPresence(wt, online, log);
  log.warn(`demo on: the page at / creates users for anyone who asks; never use --demo in production`);

  const files = serveStatic([
    { path: "/", contentType: "text/html; charset=utf-8", body: String(pageSource), cacheControl: "no-cache" },
    { path: "/demo/page.js", contentType: "text/javascript; charset=utf-8", body: String(scriptSource), cacheControl: "no-cache" },
  ]);

  const endpoints: HttpHandler = (request, url) => {
    if (url.pathname === "/demo/login" && request.method === "POST") return login();
    if (url.pathname === "/demo/say" && request.method === "POST") return say(request);
    return undefined;
  };

  async function login(): Promise<Response> {
    const user = await wt.newUser();
    salts.set(user.id, user.salt);
    return Response.json({ id: user.id, token: user.token, path, control: formatAddress(control) });
  }

  async function say(request: Request): Promise<Response> {
    const body = (await request.json().catch(() => undefined)) as { token?: unknown; text?: unknown } | undefined;
    const token = typeof body?.token === "string" ? body.token : "";
    const text = typeof body?.text === "string" ? body.text.trim().slice(0, MAX_SAY) : "";
    const bang = token.indexOf("!");
    const id = Number(token.slice(0, bang));
    if (bang < 0 || salts.get(id) !== token.slice(bang + 1)) return new Response("unknown token\n", { status: 403 });
    if (text === "") return new Response("nothing to say\n", { status: 400 });
    // The page posts to the application (here, the demo), which decides and shouts: webtalk itself stays one-way.
    await wt.shout(EVERYONE, JSON.stringify({ demo: "chat", from: id, text }));
    return new Response(null, { status: 204 });
  }

  return {
    http: firstOf(files, endpoints),
    async stop() {
      await wt.close();
      await presence;
    },
  };
}

/** Keeps `online` current from `[listen]` events and shouts the list to everyone at each change. */
async function watchPresence(wt: WebtalkClient, online: Set<number>, log: ConsolaInstance): Promise<void> {
  try {
    for await (const event of wt.events()) {
      if (event.type === "online") online.add(event.user);
      else if (event.type === "offline") online.delete(event.user);
      else continue;
      await wt.shout(EVERYONE, JSON.stringify({ demo: "presence", online: [...online].sort((a, b) => a - b) }));
    }
  } catch (error) {
    log.warn("demo: presence stopped:", error);
  }
}
