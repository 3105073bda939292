// Who may talk to webtalk, the limits that bound it, slow consumers, and a graceful shutdown.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame, encodeFrames, FrameDecoder } from "../src/protocol/frame.ts";
import { Browser, ControlClient, Inbox, loggedIn, newUser, rawWebSocket, startTestServer, within } from "./helpers.ts";
import { MAIN, runToExit, spawnServer } from "./process.ts";
import { ITEM_BYTES, KEY_BYTES } from "../src/util/keyed-fifo.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-hardening-"));
let cert = "";
let key = "";

beforeAll(async () => {
  cert = join(dir, "cert.pem");
  key = join(dir, "key.pem");
  const made = await runToExit(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
    { cwd: dir },
  );
  expect(made.code).toBe(0);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("control authentication", () => {
  test("with --secret, the first frame must be [auth] SECRET", async () => {
    const server = await startTestServer({ secret: "s3cret" });
    const good = await ControlClient.connect(server.private.port);
    expect(await good.call("[auth] s3cret")).toBe("[ok] authenticated");
    expect(await good.call("[newuser]")).toMatch(/^\[ok\] \d{16}!/);

    const skipper = await ControlClient.connect(server.private.port);
    expect(await skipper.call("[newuser]")).toBe("[error] authentication required");
    await within(skipper.closed, "the unauthenticated connection to close");

    const wrong = await ControlClient.connect(server.private.port);
    expect(await wrong.call("[auth] guess")).toBe("[error] authentication failed");
    await within(wrong.closed, "the wrong-secret connection to close");

    // Nothing the refused connections sent ran: there is still one user.
    expect(await good.call("[stats]")).toMatch(/ users=1 /);
    good.close();
    await server.stop();
  });

  test("pipelined frames after a failed [auth] are not run", async () => {
    const server = await startTestServer({ secret: "s3cret" });
    const c = await ControlClient.connect(server.private.port);
    c.write(encodeFrames(["[auth] nope", "[store] k!v"]));
    expect(await c.replies.next()).toBe("[error] authentication failed");
    await within(c.closed, "the connection to close");
    const ok = await ControlClient.connect(server.private.port);
    await ok.ok("[auth] s3cret");
    expect(await ok.call("[retrieve] k")).toBe("[ok] ");
    ok.close();
    await server.stop();
  });

  test("without a secret, [auth] anything succeeds, so clients may always send it", async () => {
    const server = await startTestServer();
    const c = await ControlClient.connect(server.private.port);
    expect(await c.call("[auth] whatever")).toBe("[ok] authenticated");
    c.close();
    await server.stop();
  });

  test("a non-loopback control port without a secret is warned about at startup", async () => {
    const server = await spawnServer(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "0.0.0.0:0"], { cwd: dir });
    try {
      // Warnings go to stderr, the address lines to stdout: the two streams arrive in either order.
      for (let i = 0; i < 200 && !server.output().includes("without --secret"); i++) await Bun.sleep(10);
      expect(server.output()).toContain("without --secret");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe("TLS", () => {
  test("--tls-cert/--tls-key serve wss:// and https://; --private-tls secures the control port", async () => {
    const server = await startTestServer({ tlsCert: cert, tlsKey: key, privateTls: true });
    expect(server.publicUrl).toStartWith("wss://");
    const tls = { rejectUnauthorized: false };
    const http = await fetch(`https://127.0.0.1:${server.public.port}/`, { tls });
    expect(http.status).toBe(404);

    const replies = new Inbox<string>();
    const decoder = new FrameDecoder();
    const handshake = Promise.withResolvers<boolean>();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.private.port,
      // Verified against the test's own certificate: this is a real TLS handshake, not a bypass.
      tls: { ca: readFileSync(cert, "utf8"), serverName: "localhost" },
      socket: {
        handshake: (_s, authorized) => handshake.resolve(authorized),
        data(_s, chunk) {
          for (const f of decoder.push(chunk)) if (f.kind === "payload") replies.push(new TextDecoder().decode(f.bytes));
        },
      },
    });
    expect(await within(handshake.promise, "the TLS handshake")).toBe(true);
    socket.write(encodeFrame("[newuser]"));
    const token = (await replies.next()).slice(5);
    socket.write(encodeFrame(`[whisper] ${token.split("!")[0]}!over tls`));
    expect(await replies.next()).toBe("[ok] message queued");

    const ws = new WebSocket(server.publicUrl.replace("127.0.0.1", "127.0.0.1"), { tls } as never);
    const got = new Inbox<string>();
    ws.onmessage = (e) => got.push(String(e.data));
    await within(new Promise((resolve) => (ws.onopen = resolve)), "wss open");
    ws.send(token);
    expect(await got.next()).toBe("over tls");
    ws.close();
    socket.end();
    await server.stop();
  });

  test("a missing or unreadable certificate is a clear startup error with exit code 2", async () => {
    const missing = await runToExit(["bun", MAIN, "--tls-cert", join(dir, "nope.pem"), "--tls-key", key], { cwd: dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("invalid --tls-cert value");
    expect(missing.stderr).toContain("ENOENT");
    const notPem = await runToExit(["bun", MAIN, "--tls-cert", cert, "--tls-key", cert], { cwd: dir });
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toContain("not a PEM private key");
    const half = await runToExit(["bun", MAIN, "--tls-cert", cert], { cwd: dir });
    expect(half.code).toBe(2);
    expect(half.stderr).toContain("go together");
  });
});

describe("origins and connection limits", () => {
  test("--origins refuses other origins with 403 and lets listed ones and non-browser clients in", async () => {
    const server = await startTestServer({ origins: ["https://app.example.com"] });
    const evil = await rawWebSocket(server.public.port, "/webtalk", { headers: { Origin: "https://evil.example" } });
    expect(evil.status).toBe("HTTP/1.1 403 Forbidden");
    const good = await rawWebSocket(server.public.port, "/webtalk", { headers: { Origin: "https://app.example.com" } });
    expect(good.status).toStartWith("HTTP/1.1 101");
    const none = await rawWebSocket(server.public.port, "/webtalk");
    expect(none.status).toStartWith("HTTP/1.1 101");
    for (const s of [evil, good, none]) s.socket.terminate();
    await server.stop();
  });

  test("--max-connections refuses browsers beyond it with 503", async () => {
    const server = await startTestServer({ maxConnections: 2 });
    const a = await Browser.open(server.publicUrl);
    const b = await Browser.open(server.publicUrl);
    const c = await rawWebSocket(server.public.port, "/webtalk");
    expect(c.status).toBe("HTTP/1.1 503 Service Unavailable");
    a.close();
    await a.closedWithin();
    // The freed slot is usable again once the server has seen the close.
    let status = "";
    for (let i = 0; i < 100 && !status.startsWith("HTTP/1.1 101"); i++) {
      const d = await rawWebSocket(server.public.port, "/webtalk");
      status = d.status;
      d.socket.terminate();
      if (!status.startsWith("HTTP/1.1 101")) await Bun.sleep(10);
    }
    expect(status).toStartWith("HTTP/1.1 101");
    b.close();
    c.socket.terminate();
    await server.stop();
  });

  test("--max-control-connections refuses control connections beyond it", async () => {
    const server = await startTestServer({ maxControlConnections: 1 });
    const first = await ControlClient.connect(server.private.port);
    const second = await ControlClient.connect(server.private.port);
    expect(await second.replies.next()).toBe("[error] too many control connections");
    await within(second.closed, "the refused connection to close");
    expect(await first.call("[ping]")).toBe("[ok] pong");
    first.close();
    await server.stop();
  });
});

describe("bounded memory", () => {
  test("a browser that never reads is closed with 4006 while 50 MB are shouted; the others get everything", async () => {
    const server = await spawnServer(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--backpressure", "262144"], {
      cwd: dir,
    });
    const ctl = await ControlClient.connect(server.privatePort);
    const events = await ControlClient.connect(server.privatePort);
    await events.ok("[listen]");
    expect(await events.replies.next("[epoch]")).toStartWith("[epoch] ");
    const slowUser = await newUser(ctl);
    const slow = await rawWebSocket(Number(new URL(server.publicUrl).port), "/webtalk", { read: false });
    slow.sendText(slowUser.token);
    expect(await events.replies.next()).toBe(`[online] ${slowUser.id}`);
    const [reader, readerUser] = await loggedIn({ publicUrl: server.publicUrl } as never, ctl);
    expect(await events.replies.next()).toBe(`[online] ${readerUser.id}`);

    const chunk = "z".repeat(1000);
    const batch = 1000; // 1 MB per pipelined batch, 50 batches
    let peakRss = 0;
    for (let b = 0; b < 50; b++) {
      ctl.write(encodeFrames(Array.from({ length: batch }, (_, i) => `[shout] 1!${b * batch + i}:${chunk}`)));
      await ctl.replies.take(batch, "shout replies", 20_000);
      const got = await reader.messages.take(batch, "shouts", 20_000);
      expect(got[0]).toBe(`${b * batch}:${chunk}`);
      expect(got.at(-1)).toBe(`${b * batch + batch - 1}:${chunk}`);
      peakRss = Math.max(peakRss, rssOf(server.proc.pid));
    }
    expect(await events.replies.next()).toBe(`[offline] ${slowUser.id}`);
    const stats = await ctl.call("[stats]");
    expect(stats).toContain("slow_consumers=1");
    // The server holds at most ~4× 256 KB for the slow browser; 50 MB must never pile up.
    expect(peakRss).toBeLessThan(150 * 1024 * 1024);
    console.log(`slow consumer: peak server RSS ${(peakRss / 1048576).toFixed(1)} MB while 50 MB were shouted`);
    reader.close();
    slow.socket.terminate();
    ctl.close();
    events.close();
    expect(await server.stop()).toBe(0);
  }, 60_000);

  test("--queue-bytes bounds held messages across all users, oldest first", async () => {
    // Each held entry is about 100 bytes (the text plus its stored offset) and its bookkeeping, and
    // one user's queue its own: room for ten.
    const server = await startTestServer({ queueBytes: 10 * (2 * 101 + ITEM_BYTES) + KEY_BYTES });
    const ctl = await ControlClient.connect(server.private.port);
    const a = await newUser(ctl);
    const b = await newUser(ctl);
    const text = "x".repeat(95);
    for (let i = 0; i < 10; i++) await ctl.ok(`[whisper] ${a.id}!a${i}:${text}`);
    for (let i = 0; i < 10; i++) await ctl.ok(`[whisper] ${b.id}!b${i}:${text}`);
    // 20 messages against a budget for 10: the 10 oldest overall (all of a's) went first.
    const stats = await ctl.call("[stats]");
    expect(stats).toContain("held=10");
    expect(stats).toContain("dropped=10");
    const browserB = await Browser.open(server.publicUrl);
    browserB.send(b.token);
    const heldB = await browserB.messages.take(10);
    expect(heldB.map((m) => m.split(":")[0])).toEqual(["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"]);
    const [browserA, , earlierA] = await loggedIn(server, ctl, a);
    expect(earlierA).toEqual([]);
    browserA.close();
    browserB.close();
    ctl.close();
    await server.stop();
  });
});

describe("graceful shutdown", () => {
  test("SIGTERM answers every frame already received, closes browsers with 1001 and exits 0", async () => {
    const server = await spawnServer(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0"], { cwd: dir });
    const ctl = await ControlClient.connect(server.privatePort);
    const [browser] = await loggedIn({ publicUrl: server.publicUrl } as never, ctl);
    const count = 20_000;
    // Everything goes out in one write just before the signal; every frame must still be answered.
    ctl.write(encodeFrames(Array.from({ length: count }, (_, i) => `[store] k${i}!${i}`)));
    const first = await ctl.replies.next();
    expect(first).toBe("[ok] stored k0");
    server.proc.kill("SIGTERM");
    const rest = await ctl.replies.take(count - 1, "replies after SIGTERM", 15_000);
    expect(rest.at(-1)).toBe(`[ok] stored k${count - 1}`);
    expect(await browser.closedWithin()).toEqual({ code: 1001, reason: "server shutting down" });
    await within(ctl.closed, "the control connection to close");
    expect(await within(server.proc.exited, "exit", 15_000)).toBe(0);
    expect(server.output()).toContain("shutting down");
    await server.stop();
  }, 30_000);

  test("SIGINT too", async () => {
    const server = await spawnServer(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0"], { cwd: dir });
    expect(await server.stop("SIGINT")).toBe(0);
  });
});

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}
