// `webtalk ctl` as an operator runs it: the compiled binary, as a subprocess, against a running server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame, encodeFrames, FrameDecoder } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, Inbox, startTestServer, within } from "./helpers.ts";
import { ROOT, runToExit } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-ctl-"));
const binary = join(dir, "webtalk");
let server: Webtalk;
let env: Record<string, string>;

beforeAll(async () => {
  const build = await runToExit([process.execPath, join(ROOT, "scripts/build.ts"), "--outfile", binary]);
  expect(build.code).toBe(0);
  server = await startTestServer({ upstream: true });
  // No Bun on PATH: the binary stands alone. WEBTALK_PRIVATE is how ctl finds the server.
  env = { PATH: "/nonexistent", HOME: dir, WEBTALK_PRIVATE: `127.0.0.1:${server.private.port}` };
}, 60_000);

const spawned: { kill(signal: "SIGKILL"): void }[] = [];

afterAll(async () => {
  for (const proc of spawned) proc.kill("SIGKILL");
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function ctl(args: string[], extraEnv: Record<string, string> = {}) {
  return runToExit([binary, "ctl", ...args], { env: { ...env, ...extraEnv }, cwd: dir });
}

/** Runs ctl and returns its stdout less the last newline, failing unless it exited 0 with nothing on stderr. */
async function ok(...args: string[]): Promise<string> {
  const result = await ctl(args);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  return result.stdout.replace(/\n$/, "");
}

describe("commands that succeed print the reply's data and exit 0", () => {
  test("newuser, whisper and shout reach a browser", async () => {
    const token = await ok("newuser");
    expect(token).toMatch(/^\d+![A-Za-z0-9_-]{24}$/);
    const id = token.split("!")[0]!;
    expect(await ok("whisper", id, "hello, it's me!")).toBe("message queued");
    const browser = await Browser.open(server.publicUrl);
    browser.send(token);
    expect(await browser.messages.next()).toBe("hello, it's me!");
    expect(await ok("whisper", id, "ünïcödé ✓\nsecond line")).toBe("message sent");
    expect(await browser.messages.next()).toBe("ünïcödé ✓\nsecond line");
    expect(await ok("shout", "1", "hi all")).toBe("message sent");
    expect(await browser.messages.next()).toBe("hi all");
    expect(await ok("whisper", id, "--", "-5 degrees")).toBe("message sent"); // after --, a message may start with -
    expect(await browser.messages.next()).toBe("-5 degrees");
    expect(await ok("online", id)).toBe("1");
    expect(await ok("kick", id)).toBe("user kicked");
    expect((await browser.closedWithin()).code).toBe(4005);
    expect(await ok("online", id)).toBe("0");
    expect(await ok("killuser", id)).toBe("user killed");
  });

  test("channels, the store, presence, ping, stats and raw", async () => {
    const user = (await ok("newuser")).split("!")[0]!;
    const channel = await ok("newchannel");
    expect(channel).toMatch(/^\d+$/);
    expect(await ok("join", channel, user)).toBe("user joined");
    expect(await ok("count", channel)).toBe("1!0");
    expect(await ok("members", channel)).toBe(user);
    expect(await ok("leave", channel, user)).toBe("user leaved");
    expect((await ctl(["members", channel])).stdout).toBe(""); // no members, no lines
    expect(await ok("killchannel", channel)).toBe("channel killed");
    expect(await ok("store", "greeting", "hello!world")).toBe("stored greeting");
    expect(await ok("retrieve", "greeting")).toBe("hello!world");
    expect(await ok("clear", "greeting")).toBe("cleared greeting");
    expect((await ctl(["retrieve", "greeting"])).stdout).toBe("\n"); // the empty value
    expect(await ok("ping")).toBe("pong");
    expect(await ok("stats")).toMatch(/^uptime_s=\d+ users=\d+ online=\d+ channels=\d+ held=\d+ delivered=\d+/);
    expect(await ok("raw", `[online] ${user}`)).toBe("0");
  });

  test("members pages through a channel bigger than one reply, one ID per line", async () => {
    const fresh = await startTestServer();
    try {
      const c = await ControlClient.connect(fresh.private.port);
      const total = 25_000; // more IDs than one frame holds: ctl must page
      c.write(encodeFrames(Array.from({ length: total }, () => "[newuser]")));
      const ids = (await c.replies.take(total, "newuser replies")).map((reply) => reply.slice(5).split("!")[0]);
      c.close();
      const result = await runToExit([binary, "ctl", "members", "1", "--private", `127.0.0.1:${fresh.private.port}`], { env, cwd: dir });
      expect(result.code).toBe(0);
      expect(result.stderr).toBe(""); // no progress line when stderr is not a terminal
      expect(result.stdout).toBe(`${ids.join("\n")}\n`);
    } finally {
      await fresh.stop();
    }
  });
});

describe("failures", () => {
  test("an [error] reply is printed on stderr and exits 1", async () => {
    const result = await ctl(["whisper", "999999", "hello"]);
    expect(result).toEqual({ code: 1, stdout: "", stderr: "[error] no such user 999999\n" });
    const raw = await ctl(["raw", "[frobnicate]"]);
    expect(raw).toEqual({ code: 1, stdout: "", stderr: "[error] unknown command [frobnicate]\n" });
  });

  test("no server exits 1 and says where it tried; --private beats WEBTALK_PRIVATE", async () => {
    const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = dead.port;
    dead.stop(true);
    const refused = await ctl(["ping"], { WEBTALK_PRIVATE: `127.0.0.1:${port}` });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`cannot connect to webtalk at 127.0.0.1:${port}: connection refused`);
    const flagWins = await ctl(["ping", "--private", `127.0.0.1:${server.private.port}`], { WEBTALK_PRIVATE: `127.0.0.1:${port}` });
    expect(flagWins).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
    const before = await ctl(["--private", `127.0.0.1:${server.private.port}`, "ping"], { WEBTALK_PRIVATE: `127.0.0.1:${port}` });
    expect(before.stdout).toBe("pong\n");
  });

  test.each([
    [["whisper", "1"], "Missing required positional argument: MESSAGE"],
    [["shout", "1", "hi", "all"], "too many arguments: all (quote a message that has spaces)"],
    [["whisper", "1", "-x"], "unknown flag -x"],
    [["ping", "--privat", "127.0.0.1:1"], "unknown flag --privat"],
    [["frobnicate"], "Unknown command frobnicate"],
    [["store", "a!b", "c"], 'KEY may not contain "!"'],
    [["ping", "--private", "nowhere"], 'invalid --private value "nowhere"'],
    [["ping", "--timeout", "soon"], 'invalid --timeout value "soon"'],
  ])("usage error %p exits 2: %p", async (args, message) => {
    const result = await ctl(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toStartWith("webtalk ctl: ");
    expect(result.stderr).toContain(message);
  });

  test("--help lists the commands and exits 0; no command at all prints it and exits 2", async () => {
    const help = await ctl(["--help"]);
    expect(help.code).toBe(0);
    for (const name of ["newuser", "whisper", "shout", "stats", "listen", "raw", "members", "kick", "--private", "--secret"]) {
      expect(help.stdout).toContain(name);
    }
    const whisperHelp = await ctl(["whisper", "--help"]);
    expect(whisperHelp.stdout).toContain("webtalk ctl whisper [flags] ID MESSAGE");
    expect((await ctl([])).code).toBe(2);
  });
});

describe("listen", () => {
  test("prints each event as it happens, and exits 0 when interrupted", async () => {
    const listener = spawnCtl(["listen"]);
    await listener.stderr.next("the listening notice");
    expect(await listener.stdout.next("[epoch]")).toMatch(/^\[epoch\] [\w-]+$/);
    const user = (await ok("newuser")).split("!");
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.join("!"));
    expect(await listener.stdout.next("[online]")).toBe(`[online] ${user[0]}`);
    browser.send("from the page");
    expect(await listener.stdout.next("[message]")).toBe(`[message] ${user[0]}!from the page`);
    browser.close();
    expect(await listener.stdout.next("[offline]")).toBe(`[offline] ${user[0]}`);
    listener.proc.kill("SIGINT");
    expect(await within(listener.proc.exited, "ctl listen to exit")).toBe(0);
  });

  test("exits 1 when the server goes away", async () => {
    const fresh = await startTestServer();
    const listener = spawnCtl(["listen", "--private", `127.0.0.1:${fresh.private.port}`]);
    expect(await listener.stderr.next("the listening notice")).toContain("listening to 127.0.0.1:");
    await fresh.stop();
    expect(await within(listener.proc.exited, "ctl listen to exit")).toBe(1);
    expect(await listener.stderr.next("the reason")).toContain("[error] the server closed the connection");
  });
});

describe("--secret", () => {
  // A peer on a real socket that records what ctl sends: the frames on the wire, in order.
  test("sends [auth] SECRET first, then the command; the flag beats WEBTALK_SECRET", async () => {
    const peer = recordingPeer({ "[auth] s3cret": "[ok] authenticated", "[ping]": "[ok] pong" });
    const flag = await ctl(["ping", "--private", `127.0.0.1:${peer.port}`, "--secret", "s3cret"], { WEBTALK_SECRET: "other" });
    expect(flag).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
    const fromEnv = await ctl(["ping", "--private", `127.0.0.1:${peer.port}`], { WEBTALK_SECRET: "s3cret" });
    expect(fromEnv).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
    expect(peer.received).toEqual(["[auth] s3cret", "[ping]", "[auth] s3cret", "[ping]"]);
    peer.stop();
  });

  test("a refused secret exits 1 before any command is sent, and the secret is never printed", async () => {
    const peer = recordingPeer({ "[auth] wrong": "[error] authentication failed" });
    const refused = await ctl(["whisper", "1", "x", "--private", `127.0.0.1:${peer.port}`, "--secret", "wrong"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("authentication failed");
    expect(refused.stderr + refused.stdout).not.toContain("wrong");
    expect(peer.received).toEqual(["[auth] wrong"]);
    peer.stop();
  });

  test("against a server started with --secret: the right secret runs the command; none or a wrong one exits 1", async () => {
    const guarded = await startTestServer({ secret: "s3cret" });
    const at = ["--private", `127.0.0.1:${guarded.private.port}`];
    try {
      expect(await ctl(["ping", ...at, "--secret", "s3cret"])).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
      expect(await ctl(["newchannel", ...at], { WEBTALK_SECRET: "s3cret" })).toEqual({ code: 0, stdout: expect.stringMatching(/^\d{16}\n$/), stderr: "" });
      const none = await ctl(["ping", ...at]);
      expect(none).toEqual({ code: 1, stdout: "", stderr: "[error] authentication required\n" });
      const wrong = await ctl(["ping", ...at, "--secret", "guess"]);
      expect(wrong).toEqual({ code: 1, stdout: "", stderr: "[error] authentication failed: authentication failed\n" });
    } finally {
      await guarded.stop();
    }
  });
});

describe("--tls", () => {
  test("talks to a control port behind --private-tls, verifying its certificate", async () => {
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const made = await runToExit(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
      { cwd: dir },
    );
    expect(made.code).toBe(0);
    const secured = await startTestServer({ tlsCert: cert, tlsKey: key, privateTls: true });
    const at = ["--private", `127.0.0.1:${secured.private.port}`, "--tls"];
    try {
      expect(await ctl(["ping", ...at, "--tls-ca", cert, "--tls-name", "localhost"])).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
      expect(await ctl(["ping", ...at, "--tls-name", "localhost"], { WEBTALK_TLS_CA: cert })).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
      // A self-signed certificate nobody said to trust, or one for another name, is refused.
      const untrusted = await ctl(["ping", ...at, "--tls-name", "localhost"]);
      expect(untrusted.code).toBe(1);
      expect(untrusted.stderr).toContain("cannot connect to webtalk");
      const otherName = await ctl(["ping", ...at, "--tls-ca", cert]);
      expect(otherName.code).toBe(1);
      expect(otherName.stderr).toContain("cannot connect to webtalk");
    } finally {
      await secured.stop();
    }
  }, 20_000);
});

/** A ctl process whose output lines arrive in inboxes, for commands that run until stopped. */
function spawnCtl(args: string[]) {
  const proc = Bun.spawn([binary, "ctl", ...args], { env, cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  spawned.push(proc);
  return { proc, stdout: lines(proc.stdout), stderr: lines(proc.stderr) };
}

function lines(stream: ReadableStream<Uint8Array>): Inbox<string> {
  const inbox = new Inbox<string>();
  void (async () => {
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n")) {
        inbox.push(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    }
  })();
  return inbox;
}

/** A TCP peer that frames like webtalk, records each payload and answers from `replies`. */
function recordingPeer(replies: Record<string, string>) {
  const received: string[] = [];
  const listener = Bun.listen<FrameDecoder>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = new FrameDecoder();
      },
      data(socket, chunk) {
        for (const frame of socket.data.push(chunk)) {
          if (frame.kind !== "payload") continue;
          const payload = new TextDecoder().decode(frame.bytes);
          received.push(payload);
          socket.write(encodeFrame(replies[payload] ?? "[error] unexpected"));
        }
      },
    },
  });
  return { port: listener.port, received, stop: () => listener.stop(true) };
}
