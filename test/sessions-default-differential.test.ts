// --sessions 1 (the default) must be byte-identical to webtalk before issue 17 (c522bd5): one script of
// control frames and browser logins (plain and webtalk.v2: replace, resume, kick, killuser, presence,
// [stats]) run against the server before the change (git archive c522bd5) and against this tree, real
// processes; every control reply, every [listen] event, every browser message and close must match
// (IDs, salts, epochs and uptime masked).

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { LOOPBACK, MAIN, ROOT, runToExit, spawnServer, type Spawned } from "./process.ts";

const BEFORE = "c522bd5";
const epochs = new WeakMap<Browser, string>();
const dir = mkdtempSync(join(tmpdir(), "webtalk-before17-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function checkoutBefore(): Promise<string> {
  const out = await runToExit(["sh", "-c", `git archive ${BEFORE} | tar -x -C ${dir}`], { cwd: ROOT, timeoutMs: 60_000 });
  if (out.code !== 0) throw new Error(`git archive: ${out.stderr}`);
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return join(dir, "src/main.ts");
}

async function script(node: Spawned): Promise<string[]> {
  const log: string[] = [];
  const ids = new Map<string, string>();
  const mask = (s: string) => {
    let out = s;
    for (const [real, name] of ids) out = out.split(real).join(name);
    return out
      .replace(/epoch=\S+/, "epoch=E")
      .replace(/uptime_s=\d+/, "uptime_s=T")
      .replace(/#epoch \S+/, "#epoch E")
      .replace(/\[epoch\] \S+/, "[epoch] E");
  };
  const ctl = await ControlClient.connect(node.privatePort);
  const listen = await ControlClient.connect(node.privatePort);
  const events: string[] = [];
  listen.replies.next("").then(function on(m): unknown {
    events.push(m);
    return listen.replies.next("", 60_000).then(on, () => undefined);
  });
  await listen.write(new TextEncoder().encode("00008[listen]"));
  const users: Record<string, User> = {};
  for (const name of ["A", "B", "C"]) users[name] = await newUser(ctl);
  // Channel and user IDs are separate spaces, both from the clock: made within one millisecond, the
  // channel could take a user's ID, and masked text could not tell them apart (one run collided, the
  // other did not). A channel made in a later millisecond cannot.
  await Bun.sleep(3);
  const ch = await ctl.ok("[newchannel]");
  if (Object.values(users).some((u) => String(u.id) === ch)) throw new Error(`channel ${ch} has a user's ID: the masks would mix them up`);
  ids.set(ch, "CH");
  for (const name of ["A", "B", "C"]) {
    ids.set(users[name]!.salt, `salt${name}`);
    ids.set(String(users[name]!.id), name);
  }
  const call = async (frame: string) => {
    const real = frame.replace(/\b([ABC]|CH)\b/g, (m) => (m === "CH" ? ch : String(users[m]!.id)));
    log.push(`> ${frame} < ${mask(await ctl.call(real))}`);
  };
  const browsers: Record<string, Browser> = {};
  const seen: Record<string, string[]> = {};
  const open = async (name: string, user: string, protocol?: string, suffix = "") => {
    const b = await Browser.open(node.publicUrl, protocol);
    browsers[name] = b;
    seen[name] = [];
    b.ws.onmessage = (e) => {
      if (String(e.data).startsWith("#epoch ")) epochs.set(b, String(e.data).slice(7));
      // webtalk.v2's `#at` notice came after issue 17 (a notice v2 clients ignore if they do not know
      // it; the original protocol has none): the rest of the v2 stream must still match.
      if (String(e.data).startsWith("#at ")) return;
      seen[name]!.push(mask(String(e.data)));
    };
    b.closed.then((c) => seen[name]!.push(`<close ${c.code} ${c.reason}>`));
    b.send(users[user]!.token + suffix);
    await Bun.sleep(150);
  };
  const settle = () => Bun.sleep(150);

  await call("[whisper] A!held1");
  await open("A1", "A");
  await call("[join] CH!A");
  await call("[whisper] A!w1");
  await call("[shout] CH!s1");
  await call("[online] A");
  await call("[count] CH");
  await call("[members] CH");
  await call("[stats]");
  await open("A2", "A"); // replaces A1
  await call("[whisper] A!w2");
  await call("[shout] CH!s2");
  await call("[online] A");
  await call("[count] CH");
  await call("[stats]");
  await open("B1", "B", "webtalk.v2");
  await call("[join] CH!B");
  await call("[whisper] B!v1");
  await call("[shout] CH!s3");
  await open("B2", "B", "webtalk.v2"); // replaces B1
  await call("[whisper] B!v2");
  browsers.B2!.close();
  await settle();
  await call("[whisper] B!v3");
  await call("[shout] CH!s4");
  const epoch = seen.B1!.find((m) => m.startsWith("#epoch"));
  expect(epoch).toBeDefined();
  // Resume from u:1 and CH:1 (epoch read back from the real first message).
  const realEpoch = epochs.get(browsers.B1!) ?? "";
  await open("B3", "B", "webtalk.v2", `!${realEpoch}!u:1,${ch}:1`);
  await call("[leave] CH!B");
  await call("[shout] CH!s5");
  await call("[count] CH");
  await call("[kick] A");
  await call("[whisper] A!afterkick");
  await call("[killuser] B");
  await call("[whisper] B!afterkill");
  await open("C1", "C");
  await open("C2", "C", undefined, "x"); // wrong salt: C1 stays
  await call("[whisper] C!c1");
  await call("[online] C");
  await call("[stats]");
  await open("A3", "A"); // gets afterkick
  await settle();
  await call("[stats]");
  for (const name of Object.keys(browsers).sort()) log.push(`${name}: ${seen[name]!.join(" | ")}`);
  log.push(`events: ${events.map(mask).join(" | ")}`);
  for (const b of Object.values(browsers)) b.close();
  ctl.close();
  listen.close();
  return log;
}


describe("--sessions 1 (the default) against the server before issue 17", () => {
  test("the same script gets byte-identical replies, events, messages and closes", async () => {
    const before = await checkoutBefore();
    const run = async (main: string) => {
      const node = await spawnServer(["bun", main, ...LOOPBACK]);
      try {
        return await script(node);
      } finally {
        await node.stop();
      }
    };
    const old = await run(before);
    const now = await run(MAIN);
    console.log(now.join("\n"));
    expect(now).toEqual(old);
  }, 60_000);
});
