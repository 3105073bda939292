// Logs for log shippers: --log-format json writes one JSON object per line, with time, level,
// message and fields; connections and login outcomes are logged at debug, never a salt.

import { expect, test } from "bun:test";
import { formatJsonLine } from "../src/observe/log.ts";
import { Browser, ControlClient, loggedIn, newUser } from "./helpers.ts";
import { MAIN, spawnServer } from "./process.ts";

const date = new Date("2026-01-02T03:04:05.678Z");

test("a JSON line has time, level, tag and msg, then the fields of object arguments", () => {
  const line = formatJsonLine({ date, level: 4, type: "debug", tag: "public", args: ["user", 7, "logged in", { user: 7 }] });
  expect(JSON.parse(line)).toEqual({
    time: "2026-01-02T03:04:05.678Z",
    level: "debug",
    tag: "public",
    msg: "user 7 logged in",
    user: 7,
  });
});

test("levels, errors as a field, and fields that cannot replace the four keys or break the line", () => {
  const error = new Error("boom");
  const parsed = JSON.parse(
    formatJsonLine({ date, level: 0, type: "error", tag: "", args: ["command failed:", error, { level: "x", n: 10n }] }),
  );
  expect(parsed.level).toBe("error");
  expect(parsed.msg).toBe("command failed:");
  expect(parsed.error).toMatchObject({ name: "Error", message: "boom" });
  expect(parsed.error.stack).toContain("boom");
  expect(parsed.n).toBe("10n"); // a BigInt JSON cannot hold, described instead
  expect("tag" in parsed).toBe(false);
  const levels = [
    [0, "fatal", "fatal"],
    [1, "warn", "warn"],
    [2, "log", "info"],
    [3, "success", "info"],
    [5, "trace", "trace"],
  ] as const;
  for (const [level, type, name] of levels) {
    expect(JSON.parse(formatJsonLine({ date, level, type, tag: "", args: ["x"] })).level).toBe(name);
  }
});

test("a server run with --log-format json: every line parses; connections and logins at debug; no salt", async () => {
  const server = await spawnServer(
    ["bun", MAIN, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"],
  );
  const ctl = await ControlClient.connect(server.privatePort);
  const user = await newUser(ctl);
  const [browser] = await loggedIn(server, ctl, user);
  const wrong = await Browser.open(server.publicUrl);
  wrong.send(`${user.id}!${user.salt.replace(/.$/, (c) => (c === "A" ? "B" : "A"))}`);
  expect((await wrong.closedWithin()).code).toBe(4001);
  browser.close();
  await browser.closedWithin();
  ctl.close();
  expect(await server.stop()).toBe(0);

  const lines = server.output().trimEnd().split("\n");
  const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const entry of entries) {
    expect(Number.isNaN(Date.parse(entry.time as string))).toBe(false);
    expect(["fatal", "error", "warn", "info", "debug", "trace"]).toContain(entry.level as string);
    expect(typeof entry.msg).toBe("string");
  }
  const said = (level: string, pattern: RegExp) => entries.some((e) => e.level === level && pattern.test(e.msg as string));
  expect(said("info", /^public\s+ws:\/\//)).toBe(true);
  expect(said("info", /^private\s+tcp:\/\//)).toBe(true);
  expect(said("info", /^admin\s+http:\/\//)).toBe(true);
  expect(said("debug", /^control connection from /)).toBe(true);
  expect(said("debug", /^browser connected$/)).toBe(true);
  expect(said("debug", new RegExp(`^user ${user.id}: logged in$`))).toBe(true);
  expect(entries.some((e) => e.msg === "browser login refused" && e.reason === "wrong-salt" && e.user === user.id && e.addr === "127.0.0.1")).toBe(true);
  expect(entries.some((e) => e.msg === `user ${user.id}: browser disconnected` && typeof e.code === "number" && e.addr === "127.0.0.1")).toBe(true);
  expect(said("info", /SIGTERM: shutting down/)).toBe(true);
  expect(server.output()).not.toContain(user.salt);
  expect(server.output()).not.toContain(user.salt.slice(0, -1));
}, 20_000);
