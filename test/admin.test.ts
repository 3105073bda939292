// The admin endpoint against real servers: /healthz for load balancers, /metrics for Prometheus,
// checked with a Prometheus text-format parser and with the format's rules, after real traffic.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import pkg from "../package.json" with { type: "json" };
import { checkHealth } from "../src/observe/health.ts";
import { createLog } from "../src/observe/log.ts";
import type { Webtalk } from "../src/server.ts";
import { MemoryState } from "../src/state/memory.ts";
import { serveAdmin } from "../src/transport/admin.ts";
import { Browser, ControlClient, loggedIn, newUser, startTestServer, WAIT_MS, within } from "./helpers.ts";
import { haveRedis, startRedis, uniquePrefix } from "./redis-server.ts";

let server: Webtalk;
let base: string;

beforeAll(async () => {
  server = await startTestServer({ queue: 1, loginTimeout: 0.2 });
  base = `http://127.0.0.1:${server.admin!.port}`;
});

afterAll(() => server.stop());

function get(path: string, init?: RequestInit): Promise<Response> {
  return within(fetch(`${base}${path}`, init), `${init?.method ?? "GET"} ${path}`);
}

/** A request as an HTTP/1.0 probe sends it, with no Host header (fetch always adds one). */
async function rawStatusLine(path: string): Promise<string> {
  const got = Promise.withResolvers<string>();
  let text = "";
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.admin!.port,
    socket: {
      data(_s, chunk) {
        text += new TextDecoder().decode(chunk);
        if (text.includes("\r\n")) got.resolve(text.split("\r\n")[0]!);
      },
      close() {
        got.resolve(text.split("\r\n")[0] ?? "");
      },
    },
  });
  socket.write(`GET ${path} HTTP/1.0\r\n\r\n`);
  try {
    return await within(got.promise, `GET ${path} without Host`);
  } finally {
    socket.end();
  }
}

describe("probes without a Host header", () => {
  // The Docker HEALTHCHECK asks /readyz over bash's /dev/tcp, HTTP/1.0 with no Host: it got 500.
  test("/livez, /readyz and /healthz answer 200 to an HTTP/1.0 request with no Host", async () => {
    for (const path of ["/livez", "/readyz", "/healthz"]) expect(await rawStatusLine(path)).toBe("HTTP/1.1 200 OK");
  });
});

describe("/healthz", () => {
  test("200 with status, version and uptime; no state field for the memory backend", async () => {
    const response = await get("/healthz");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("application/json");
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({ status: "ok", version: pkg.version, uptime_s: expect.any(Number) });
    expect(body.uptime_s as number).toBeGreaterThanOrEqual(0);
  });

  test("HEAD answers too; other methods 405; other paths 404; the public port serves neither", async () => {
    expect((await get("/healthz", { method: "HEAD" })).status).toBe(200);
    const post = await get("/metrics", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect((await get("/")).status).toBe(404);
    const publicHttp = server.publicUrl.replace(/^ws:/, "http:").replace(/\/webtalk$/, "");
    expect((await within(fetch(`${publicHttp}/metrics`), "public /metrics")).status).toBe(404);
    expect((await within(fetch(`${publicHttp}/healthz`), "public /healthz")).status).toBe(404);
  });
});

// The answers a real Redis cannot be made to give on cue (an exception, a check that never returns)
// come from a memory backend whose State.healthy() the test sets.
class SwitchableState extends MemoryState {
  answer: () => boolean | Promise<boolean> = () => true;
  healthy(): boolean | Promise<boolean> {
    return this.answer();
  }
}

describe("/healthz in cluster mode, against a real redis-server", () => {
  test.skipIf(!haveRedis)("200 while Redis answers, 503 while it is down (metrics still served), 200 once it is back", async () => {
    const redis = await startRedis();
    const node = await startTestServer({ redis: redis.url, redisPrefix: uniquePrefix("admin") });
    const at = `http://127.0.0.1:${node.admin!.port}`;
    const health = async () => {
      const response = await within(fetch(`${at}/healthz`), "/healthz");
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    try {
      expect(await health()).toEqual({
        status: 200,
        body: { status: "ok", version: pkg.version, uptime_s: expect.any(Number), state: "reachable" },
      });
      await redis.stop();
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ status: "unavailable", state: "unreachable" });
      // The scrape still answers, without the counts only Redis knows.
      const families = checkExposition(await (await within(fetch(`${at}/metrics`), "/metrics")).text());
      expect(families.has("webtalk_users_online")).toBe(true);
      expect(families.has("webtalk_users")).toBe(false);
      await redis.restart();
      // The client reconnects on its own schedule: ask again until it has, bounded.
      const deadline = Date.now() + 10_000;
      let back = await health();
      while (back.status !== 200 && Date.now() < deadline) back = await health();
      expect(back.body).toMatchObject({ status: "ok", state: "reachable" });
    } finally {
      await node.stop();
      await redis.stop();
    }
  }, 30_000);
});

describe("/healthz with a backend that can be unreachable", () => {
  const state = new SwitchableState();
  const admin = serveAdmin({
    hostname: "127.0.0.1",
    port: 0,
    health: () => checkHealth({ state, version: "9.9.9", startedAt: Date.now(), timeoutMs: 200 }),
    metrics: async () => "",
    log: createLog("silent"),
  });
  afterAll(() => admin.stop(true));
  const health = async () => {
    const response = await within(fetch(`http://127.0.0.1:${admin.port}/healthz`), "/healthz");
    return [response.status, await response.json()] as const;
  };

  test("reachable: 200 and state reachable", async () => {
    state.answer = () => true;
    expect(await health()).toEqual([200, { status: "ok", version: "9.9.9", uptime_s: 0, state: "reachable" }]);
  });

  test("unreachable, failing or too slow to answer: 503", async () => {
    const unavailable = { status: "unavailable", version: "9.9.9", uptime_s: 0, state: "unreachable" };
    state.answer = () => false;
    expect(await health()).toEqual([503, unavailable]);
    state.answer = () => Promise.reject(new Error("connection refused"));
    expect(await health()).toEqual([503, unavailable]);
    state.answer = () => new Promise(() => {}); // never answers: the 200 ms bound answers instead
    expect(await health()).toEqual([503, unavailable]);
    state.answer = () => Promise.resolve(true);
    expect((await health())[0]).toBe(200);
  });
});

describe("/metrics", () => {
  test("is valid Prometheus text: HELP and TYPE for every family, counters end in _total", async () => {
    const response = await get("/metrics");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const families = checkExposition(await response.text());
    for (const name of EXPECTED) expect(families.has(name)).toBe(true);
    const build = families.get("webtalk_build_info")!;
    expect(build.metrics).toEqual([{ value: "1", labels: { version: pkg.version, bun: Bun.version } }]);
    expect(value(families, "process_resident_memory_bytes")).toBeGreaterThan(1 << 20);
    expect(value(families, "process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(value(families, "process_start_time_seconds")).toBeLessThanOrEqual(Date.now() / 1000);
    expect(value(families, "webtalk_channels")).toBe(1);
  });

  test("values move with real traffic", async () => {
    const before = await scrape();
    const ctl = await ControlClient.connect(server.private.port);
    const listener = await ControlClient.connect(server.private.port);
    expect(await listener.call("[listen]")).toBe("[ok] listening");

    // A user with two whispers held (the queue holds one: one is dropped), then logged in: both
    // the held one and the login marker are delivered; then one whisper and one shout online.
    const user = await newUser(ctl);
    await ctl.ok(`[whisper] ${user.id}!first`);
    await ctl.ok(`[whisper] ${user.id}!second`);
    const [browser, , held] = await loggedIn(server, ctl, user);
    expect(held).toEqual([]); // the marker pushed "second" out too: queue 1
    await ctl.ok(`[whisper] ${user.id}!online`);
    await ctl.ok("[shout] 1!everyone");
    expect(await browser.messages.take(2)).toEqual(["online", "everyone"]);

    // Logins that fail: a wrong salt, a binary first message, and one that never logs in.
    const wrong = await Browser.open(server.publicUrl);
    wrong.send(`${user.id}!not-the-salt`);
    expect((await wrong.closedWithin()).code).toBe(4001);
    const binary = await Browser.open(server.publicUrl);
    binary.send(new Uint8Array([1, 2, 3]));
    expect((await binary.closedWithin()).code).toBe(4001);
    const silent = await Browser.open(server.publicUrl);
    expect((await silent.closedWithin()).code).toBe(4003);

    // Commands that fail, and one that is not a command.
    expect(await ctl.call("[whisper] 999999!x")).toStartWith("[error]");
    expect(await ctl.call("[frobnicate] 1")).toStartWith("[error]");
    expect(await ctl.call("no brackets")).toStartWith("[error]");

    const after = await settled((f) => value(f, "webtalk_browsers_connected") === 1);
    const delta = (name: string, labels?: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    expect(delta("webtalk_logins_total", { result: "ok" })).toBe(1);
    expect(delta("webtalk_logins_total", { result: "failed" })).toBe(2);
    expect(delta("webtalk_logins_total", { result: "timeout" })).toBe(1);
    expect(delta("webtalk_logins_total", { result: "duplicate" })).toBe(0);
    expect(delta("webtalk_messages_held_total")).toBe(3); // first, second, the marker
    expect(delta("webtalk_messages_dropped_total")).toBe(2); // first, then second
    expect(delta("webtalk_messages_delivered_total")).toBe(3); // the marker at login, online, everyone
    expect(delta("webtalk_control_commands_total", { command: "whisper", result: "ok" })).toBe(4);
    expect(delta("webtalk_control_commands_total", { command: "whisper", result: "error" })).toBe(1);
    expect(delta("webtalk_control_commands_total", { command: "newuser", result: "ok" })).toBe(1);
    expect(delta("webtalk_control_commands_total", { command: "listen", result: "ok" })).toBe(1);
    expect(delta("webtalk_control_commands_total", { command: "unknown", result: "error" })).toBe(2);
    expect(value(after, "webtalk_control_connections")).toBe(2);
    expect(value(after, "webtalk_listeners")).toBe(1);
    expect(value(after, "webtalk_users_online")).toBe(1);
    expect(value(after, "webtalk_browsers_connected")).toBe(1);
    expect(value(after, "webtalk_users")).toBe(value(before, "webtalk_users") + 1);
    expect(value(after, "webtalk_held_messages")).toBe(0);

    browser.close();
    await browser.closedWithin();
    listener.close();
    ctl.close();
    await Promise.all([listener.closed, ctl.closed]);
    const idle = await settled((f) => value(f, "webtalk_control_connections") === 0 && value(f, "webtalk_browsers_connected") === 0);
    expect(value(idle, "webtalk_users_online")).toBe(0);
    expect(value(idle, "webtalk_listeners")).toBe(0);
  });

  test("a second login under --duplicate reject counts as duplicate", async () => {
    const strict = await startTestServer({ duplicate: "reject" });
    try {
      const ctl = await ControlClient.connect(strict.private.port);
      const [first, user] = await loggedIn(strict, ctl);
      const second = await Browser.open(strict.publicUrl);
      second.send(user.token);
      expect((await second.closedWithin()).code).toBe(4002);
      const families = checkExposition(await (await within(fetch(`http://127.0.0.1:${strict.admin!.port}/metrics`), "metrics")).text());
      expect(value(families, "webtalk_logins_total", { result: "duplicate" })).toBe(1);
      expect(value(families, "webtalk_logins_total", { result: "ok" })).toBe(1);
      first.close();
      ctl.close();
    } finally {
      await strict.stop();
    }
  });

  test("--admin off serves nothing", async () => {
    const quiet = await startTestServer({ admin: "off" });
    expect(quiet.admin).toBeUndefined();
    await quiet.stop();
  });
});

/** The families the issue asks for, by name. */
const EXPECTED = [
  "webtalk_build_info",
  "webtalk_browsers_connected",
  "webtalk_users_online",
  "webtalk_logins_total",
  "webtalk_messages_delivered_total",
  "webtalk_messages_held_total",
  "webtalk_messages_dropped_total",
  "webtalk_messages_replayed_total",
  "webtalk_replay_gaps_total",
  "webtalk_held_messages",
  "webtalk_control_commands_total",
  "webtalk_control_connections",
  "webtalk_listeners",
  "webtalk_listeners_disconnected_total",
  "webtalk_slow_consumers_disconnected_total",
  "webtalk_rate_limited_disconnected_total",
  "process_resident_memory_bytes",
  "process_cpu_seconds_total",
];

async function scrape(): Promise<Map<string, PromFamily>> {
  return checkExposition(await (await get("/metrics")).text());
}

/**
 * Parses with parse-prometheus-text-format (prom2json's output), then holds the text to the rules
 * that parser lets pass: each family's HELP and TYPE come first and once, names and label names are
 * valid, counters end in _total, every value is a number and no series appears twice.
 */
function checkExposition(text: string): Map<string, PromFamily> {
  expect(text.endsWith("\n")).toBe(true);
  const families = new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]));
  const lines = text.slice(0, -1).split("\n");
  const seen = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  let histogram = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (\S.*)$/.exec(line);
    if (help) {
      const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(lines[++i] ?? "");
      expect(type?.[1], `TYPE line after ${line}`).toBe(help[1]!);
      expect(seen.has(help[1]!), `${help[1]} twice`).toBe(false);
      if (type![2] === "counter") expect(help[1]!).toEndWith("_total");
      seen.add(help[1]!);
      current = help[1]!;
      histogram = type![2] === "histogram";
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)$/.exec(line);
    expect(sample, `a sample line: ${line}`).not.toBeNull();
    // A histogram's samples are its name with _bucket, _sum or _count.
    const family = histogram ? sample![1]!.replace(/_(bucket|sum|count)$/, "") : sample![1];
    expect(family, `a sample under its own family: ${line}`).toBe(current!);
    expect(series.has(`${sample![1]}${sample![2] ?? ""}`), `${line}: series twice`).toBe(false);
    series.add(`${sample![1]}${sample![2] ?? ""}`);
    expect(Number.isFinite(Number(sample![3])) || ["NaN", "+Inf", "-Inf"].includes(sample![3]!)).toBe(true);
  }
  for (const family of families.values()) {
    expect(family.help.length, `${family.name} HELP`).toBeGreaterThan(0);
    expect(["COUNTER", "GAUGE", "HISTOGRAM"]).toContain(family.type);
  }
  expect([...families.keys()]).toEqual([...seen]);
  return families;
}

/** The value of the one sample of `name` with exactly these labels; 0 when the series does not exist yet. */
function value(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (!family) throw new Error(`no family ${name}`);
  const sample = family.metrics.find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
  return sample ? Number(sample.value) : 0;
}

/**
 * Scrapes until `ready` holds, for gauges that follow a close the server learns of a moment after the
 * client: each scrape is a round trip through the server's event loop, and the whole is bounded.
 */
async function settled(ready: (families: Map<string, PromFamily>) => boolean): Promise<Map<string, PromFamily>> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const families = await scrape();
    if (ready(families)) return families;
    if (Date.now() > deadline) throw new Error("timed out waiting for the gauges to settle");
  }
}
