// The demo's HTTP side without a browser: off by default, its endpoints' checks, and its backend
// (the backend client over the control port) relaying chat and presence as shouts.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, loggedIn, startTestServer } from "./helpers.ts";
import { runToExit } from "./process.ts";

describe("without --demo", () => {
  test("there is no page and no endpoint; the browser client is still served", async () => {
    const server = await startTestServer();
    const url = (path: string) => `http://127.0.0.1:${server.public.port}${path}`;
    expect((await fetch(url("/"))).status).toBe(404);
    expect((await fetch(url("/demo/page.js"))).status).toBe(404);
    expect((await fetch(url("/demo/login"), { method: "POST" })).status).toBe(404);
    expect((await fetch(url("/webtalk.js"))).status).toBe(200);
    await server.stop();
  });
});

describe("with --demo", () => {
  let server: Webtalk;
  let ctl: ControlClient;
  const url = (path: string) => `http://127.0.0.1:${server.public.port}${path}`;
  const login = async () => (await (await fetch(url("/demo/login"), { method: "POST" })).json()) as { id: number; token: string; path: string; control: string };
  const say = (body: unknown) => fetch(url("/demo/say"), { method: "POST", body: JSON.stringify(body) });

  beforeAll(async () => {
    server = await startTestServer({ demo: true });
    ctl = await ControlClient.connect(server.private.port);
  });
  afterAll(async () => {
    ctl.close();
    await server.stop();
  });

  test("the page and its script are served, never cached stale", async () => {
    const page = await fetch(url("/"));
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    expect(await page.text()).toContain('<script type="module" src="/demo/page.js">');
    expect(await (await fetch(url("/demo/page.js"))).text()).toContain('from "/webtalk.js"');
  });

  test("POST /demo/login makes a user that logs in; GET is not an endpoint", async () => {
    const user = await login();
    expect(user.token).toMatch(new RegExp(`^${user.id}![\\w-]{22,}$`));
    expect(user.path).toBe("/webtalk");
    expect(user.control).toBe(`127.0.0.1:${server.private.port}`);
    expect((await fetch(url("/demo/login"))).status).toBe(404);
    expect(await ctl.call(`[whisper] ${user.id}!hi`)).toBe("[ok] message queued");
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    expect(await browser.messages.next()).toBe("hi");
    browser.close();
  });

  test("/demo/say shouts the chat line to everyone, only for a token the demo issued", async () => {
    const [listener] = await loggedIn(server, ctl);
    const user = await login();
    expect((await say({ token: `${user.id}!wrong`, text: "x" })).status).toBe(403);
    expect((await say({ token: "1!", text: "x" })).status).toBe(403);
    expect((await say({ token: user.token, text: "   " })).status).toBe(400);
    expect((await fetch(url("/demo/say"), { method: "POST", body: "not json" })).status).toBe(403);
    expect((await say({ token: user.token, text: " hello ! there " })).status).toBe(204);
    // Presence shouts may come first (the listener's own login); the chat line follows.
    let message = await listener.messages.next("the chat shout");
    while (message.startsWith('{"demo":"presence"')) message = await listener.messages.next("the chat shout");
    expect(JSON.parse(message)).toEqual({ demo: "chat", from: user.id, text: "hello ! there" });
    listener.close();
  });

  test("presence: each login and logout shouts who is online", async () => {
    const [first, a] = await loggedIn(server, ctl);
    const online = async (browser: Browser, ids: number[]) => {
      for (;;) {
        const m = JSON.parse(await browser.messages.next("a presence shout")) as { demo: string; online: number[] };
        if (m.demo === "presence" && ids.every((id) => m.online.includes(id))) return m.online;
      }
    };
    await online(first, [a.id]);
    const [second, b] = await loggedIn(server, ctl);
    await online(first, [a.id, b.id]);
    second.close();
    for (;;) {
      const m = JSON.parse(await first.messages.next("the shout after the logout")) as { online: number[] };
      if (!m.online.includes(b.id)) break;
    }
    first.close();
  });
});

describe("with --demo behind --secret and --private-tls", () => {
  test("the demo's backend authenticates and trusts the server's own certificate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "webtalk-demo-tls-"));
    try {
      const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
      const args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=example.test"];
      expect((await runToExit(["openssl", ...args], { cwd: dir })).code).toBe(0);
      const server = await startTestServer({ demo: true, secret: "s3cret", tlsCert: cert, tlsKey: key, privateTls: true });
      const response = await fetch(`https://127.0.0.1:${server.public.port}/demo/login`, { method: "POST", tls: { rejectUnauthorized: false } });
      expect(((await response.json()) as { token: string }).token).toMatch(/^\d{16}!/);
      await server.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
