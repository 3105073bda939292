// The durability guarantee under a crash: backends stream commands at a server with --data, the
// server is SIGKILLed mid-stream, and after a restart on the same file every command that had
// answered [ok] is there: logins, memberships, held messages, the store. The file passes SQLite's
// integrity check. Each connection owns its users, channels and keys and has at most one command in
// flight at the kill, so for each thing it touched the state is exactly "all [ok]s applied", or
// that plus the one command still in flight.

import { Database } from "bun:sqlite";
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GLOBAL_CHANNEL } from "../src/state/state.ts";
import { Browser, ControlClient } from "./helpers.ts";
import { MAIN, spawnServer, type Spawned } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// A failed expectation must not leave a server running: each one started is killed by its PID.
const started: Spawned[] = [];
afterEach(() => {
  for (const server of started.splice(0)) server.proc.kill("SIGKILL");
});

const CONNECTIONS = 4;
const QUEUE = 4; // small, so drop-oldest happens and is checked too
const KILL_AFTER = 1500; // [ok] replies across all connections before the SIGKILL

interface UserModel {
  token: string;
  held: string[];
  channels: Set<number>;
}

/** What one connection's [ok] replies say the state holds for the things it owns. */
class Model {
  users = new Map<number, UserModel>();
  killed = new Set<number>();
  channels = new Set<number>();
  killedChannels = new Set<number>();
  kv = new Map<string, string>();

  /** Applies a command that answered `[ok] data` (or, for the alternative, may have been applied). */
  apply(command: string, data: string | undefined): void {
    const close = command.indexOf("]");
    const [name, arg] = [command.slice(1, close), command.slice(close + 2)];
    const [a = "", b = ""] = [arg.slice(0, arg.indexOf("!")), arg.slice(arg.indexOf("!") + 1)];
    if (name === "newuser" && data) this.users.set(Number(data.split("!")[0]), { token: data, held: [], channels: new Set([GLOBAL_CHANNEL]) });
    if (name === "newchannel" && data) this.channels.add(Number(data));
    if (name === "join") this.users.get(Number(b))?.channels.add(Number(a));
    if (name === "leave") this.users.get(Number(b))?.channels.delete(Number(a));
    if (name === "killuser") {
      this.users.delete(Number(arg));
      this.killed.add(Number(arg));
    }
    if (name === "killchannel") {
      this.channels.delete(Number(arg));
      this.killedChannels.add(Number(arg));
      for (const user of this.users.values()) user.channels.delete(Number(arg));
    }
    if (name === "whisper") {
      const held = this.users.get(Number(a))?.held;
      held?.push(b);
      if (held && held.length > QUEUE) held.shift();
    }
    if (name === "store") this.kv.set(a, b);
    if (name === "clear") this.kv.delete(arg);
  }

  clone(): Model {
    const copy = new Model();
    for (const [id, u] of this.users) copy.users.set(id, { token: u.token, held: [...u.held], channels: new Set(u.channels) });
    copy.killed = new Set(this.killed);
    copy.channels = new Set(this.channels);
    copy.killedChannels = new Set(this.killedChannels);
    copy.kv = new Map(this.kv);
    return copy;
  }
}

/** One backend connection: a steady stream of random commands on its own things, one at a time. */
async function stream(ctl: ControlClient, worker: number, random: () => number, stop: () => boolean, acked: () => void) {
  const model = new Model();
  let inFlight: string | undefined;
  const pick = <T,>(items: T[]): T | undefined => items[Math.floor(random() * items.length)];
  for (let seq = 0; !stop(); seq++) {
    const users = [...model.users.keys()];
    const channels = [GLOBAL_CHANNEL, ...model.channels];
    const user = pick(users);
    const channel = pick(channels);
    const r = random();
    let command: string;
    if (users.length < 3 || (r < 0.08 && users.length < 40)) command = "[newuser]";
    else if (model.channels.size < 2 || (r < 0.12 && model.channels.size < 8)) command = "[newchannel]";
    else if (r < 0.35) command = `[join] ${channel}!${user}`;
    else if (r < 0.45) command = `[leave] ${channel}!${user}`;
    else if (r < 0.7) command = `[whisper] ${user}!w${worker}-${seq}`;
    else if (r < 0.82) command = `[store] w${worker}-k${Math.floor(random() * 8)}!v${seq}`;
    else if (r < 0.9) command = `[clear] w${worker}-k${Math.floor(random() * 8)}`;
    else if (r < 0.94) command = `[killuser] ${user}`;
    else if (r < 0.96 && channel !== GLOBAL_CHANNEL) command = `[killchannel] ${channel}`;
    else command = `[store] w${worker}-k0!v${seq}`;
    inFlight = command;
    const reply = await Promise.race([ctl.call(command), ctl.closed.then(() => undefined)]);
    if (reply === undefined) break; // the server died with this command in flight
    if (!reply.startsWith("[ok] ")) throw new Error(`${command} answered ${reply}`);
    model.apply(command, reply.slice(5));
    inFlight = undefined;
    acked();
  }
  await ctl.closed;
  const alternative = model.clone();
  if (inFlight) alternative.apply(inFlight, undefined);
  return { model, alternative };
}

/** Logs the user's browser in; answers undefined when the user does not exist, else its held messages. */
async function logIn(server: Spawned, ctl: ControlClient, id: number, token: string) {
  const marker = `login-${id}-${Math.random()}`;
  const reply = await ctl.call(`[whisper] ${id}!${marker}`);
  if (reply === `[error] no such user ${id}`) return undefined;
  expect(reply).toBe("[ok] message queued");
  const browser = await Browser.open(server.publicUrl);
  browser.send(token);
  const held: string[] = [];
  for (let m = await browser.messages.next("held messages"); m !== marker; m = await browser.messages.next()) held.push(m);
  return { browser, held };
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.each(["full", "normal"] as const)("SIGKILL under load, --data-sync %s", (sync) => {
  test("every command answered [ok] before the kill is there after the restart", async () => {
    const data = join(dir, `crash-${sync}.db`);
    const seed = Date.now() % 100_000;
    const start = async (queue: number) => {
      const server = await spawnServer(["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--queue", String(queue), "--data", data, "--data-sync", sync], {
        cwd: dir,
      });
      started.push(server);
      return server;
    };

    // 1. A steady stream from several connections, and a SIGKILL once enough [ok]s have come back.
    let server = await start(QUEUE);
    let oks = 0;
    let killed = false;
    const kill = () => {
      if (killed || ++oks < KILL_AFTER) return;
      killed = true;
      server.proc.kill("SIGKILL");
    };
    const connections = await Promise.all(Array.from({ length: CONNECTIONS }, () => ControlClient.connect(server.privatePort)));
    const results = await Promise.all(
      connections.map((ctl, i) => stream(ctl, i, mulberry32(seed * 31 + i), () => killed, kill)),
    );
    expect(await server.stop("SIGKILL")).toBe(137);
    expect(oks).toBeGreaterThanOrEqual(KILL_AFTER);

    // 2. The file as the crash left it passes SQLite's integrity check.
    const db = new Database(data);
    expect(db.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
    db.close();

    // 3. After a restart, each user is as one of the two models says: logged in with its old
    //    credentials, its held messages delivered in order. (A larger --queue now, so the marker
    //    that proves a login does not push out a held message.)
    server = await start(1000);
    const ctl = await ControlClient.connect(server.privatePort);
    const browsers = new Map<number, { browser: Browser; expected: Set<number>[] }>();
    let maxUser = 0;
    let maxChannel = GLOBAL_CHANNEL;
    // IDs come from the clock, far apart: every channel any connection made or killed is checked.
    const everyChannel = new Set([GLOBAL_CHANNEL]);
    for (const [i, { model, alternative }] of results.entries()) {
      const ids = new Set([...model.users.keys(), ...model.killed, ...alternative.users.keys()]);
      for (const id of ids) {
        maxUser = Math.max(maxUser, id);
        const [a, b] = [model.users.get(id), alternative.users.get(id)];
        const token = (a ?? b)?.token ?? "0!x";
        const got = await logIn(server, ctl, id, token);
        if (!got) {
          expect(a === undefined || b === undefined, `user ${id} of connection ${i} is gone (seed ${seed})`).toBe(true);
          continue;
        }
        expect(a !== undefined || b !== undefined, `killed user ${id} of connection ${i} is back (seed ${seed})`).toBe(true);
        const heldOptions = [a?.held, b?.held].filter((h) => h !== undefined).map((h) => JSON.stringify(h));
        expect(heldOptions, `held messages of user ${id} (seed ${seed})`).toContain(JSON.stringify(got.held));
        browsers.set(id, { browser: got.browser, expected: [a?.channels, b?.channels].filter((c) => c !== undefined) });
      }
      for (const c of [...model.channels, ...alternative.channels]) maxChannel = Math.max(maxChannel, c);
      for (const c of [...model.channels, ...alternative.channels, ...model.killedChannels, ...alternative.killedChannels]) everyChannel.add(c);
      // 4. The store.
      for (let k = 0; k < 8; k++) {
        const key = `w${i}-k${k}`;
        const value = (await ctl.call(`[retrieve] ${key}`)).slice(5);
        expect([model.kv.get(key) ?? "", alternative.kv.get(key) ?? ""], `${key} (seed ${seed})`).toContain(value);
      }
    }

    // 5. Memberships: a shout to every channel reaches exactly the members of each.
    const shouted: number[] = [];
    for (const channel of [...everyChannel].sort((a, b) => a - b)) {
      const reply = await ctl.call(`[shout] ${channel}!shout-${channel}`);
      if (reply === "[ok] message sent") shouted.push(channel);
      else expect(reply).toBe(`[error] no such channel ${channel}`);
    }
    for (const [id, { browser, expected }] of browsers) {
      await ctl.ok(`[whisper] ${id}!end`);
      const received: string[] = [];
      for (let m = await browser.messages.next("shouts"); m !== "end"; m = await browser.messages.next()) received.push(m);
      const options = expected.map((channels) => JSON.stringify(shouted.filter((c) => channels.has(c)).map((c) => `shout-${c}`)));
      expect(options, `channels of user ${id} (seed ${seed})`).toContain(JSON.stringify(received));
      browser.close();
    }

    // The checks above were not vacuous: the stream had made users, held messages and channels.
    expect(browsers.size).toBeGreaterThan(20);
    expect(results.some(({ model }) => [...model.users.values()].some((u) => u.held.length > 0))).toBe(true);
    expect(shouted.length).toBeGreaterThan(5);
    // 6. IDs go on after the highest ever answered.
    expect(Number((await ctl.ok("[newuser]")).split("!")[0])).toBeGreaterThan(maxUser);
    expect(Number(await ctl.ok("[newchannel]"))).toBeGreaterThan(maxChannel);
    ctl.close();
    expect(await server.stop()).toBe(0);
  }, 60_000);
});
