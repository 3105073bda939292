// Configuration: precedence (flag > env > file > default), clear errors with exit code 2, and the CLI.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../src/config/load.ts";
import { envName, settings } from "../src/config/schema.ts";
import { ControlClient } from "./helpers.ts";
import { MAIN, runToExit, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

describe("loadConfig", () => {
  const empty = mkdtempSync(join(tmpdir(), "webtalk-empty-"));
  afterAll(() => rmSync(empty, { recursive: true, force: true }));

  test("defaults", () => {
    const { config } = loadConfig({ flags: {}, env: {}, cwd: empty });
    expect(config).toMatchObject({
      public: { host: "0.0.0.0", port: 12345 },
      private: { host: "127.0.0.1", port: 12344 },
      path: "/webtalk",
      queue: 1000,
      loginTimeout: 10,
      duplicate: "replace",
      upstream: false,
      secret: "",
      origins: [],
      demo: false,
      logLevel: "info",
      data: "",
      dataSync: "full",
      logFormat: "pretty",
      admin: { host: "127.0.0.1", port: 12346 },
    });
    // Every setting resolves to its documented default.
    for (const setting of settings) expect(config[setting.key]).toEqual(setting.default);
  });

  test("flag beats env beats file beats default, for every source", () => {
    const file = writeConfig("all.json", { Public: ":1111", Private: "127.0.0.1:2222", queue: 5, path: "/file" });
    const env = { WEBTALK_CONFIG: file, WEBTALK_PRIVATE: "127.0.0.1:3333", WEBTALK_QUEUE: "7" };
    const { config } = loadConfig({ flags: { queue: "9" }, env, cwd: empty });
    expect(config.public).toEqual({ host: "0.0.0.0", port: 1111 }); // file (":PORT" means all interfaces)
    expect(config.private).toEqual({ host: "127.0.0.1", port: 3333 }); // env over file
    expect(config.queue).toBe(9); // flag over env over file
    expect(config.path).toBe("/file");
    expect(config.loginTimeout).toBe(10); // default
  });

  test("webtalk.ini in the working directory is read when present", () => {
    const cwd = mkdtempSync(join(tmpdir(), "webtalk-ini-"));
    writeFileSync(join(cwd, "webtalk.ini"), JSON.stringify({ Public: "127.0.0.1:4444", Private: ":5555" }));
    const loaded = loadConfig({ flags: {}, env: {}, cwd });
    expect(loaded.config.public).toEqual({ host: "127.0.0.1", port: 4444 });
    expect(loaded.config.private).toEqual({ host: "0.0.0.0", port: 5555 });
    expect(loaded.file).toBe(join(cwd, "webtalk.ini"));
    rmSync(cwd, { recursive: true, force: true });
  });

  test("a config file saved with a byte-order mark reads as JSON", () => {
    const file = writeConfig("bom.json", `\uFEFF${JSON.stringify({ queue: 7 })}`);
    expect(loadConfig({ flags: { config: file }, env: {}, cwd: empty }).config.queue).toBe(7);
  });

  test("IPv6 addresses parse; the original's Public and Private are aliases of public and private", () => {
    const file = writeConfig("ipv6.json", { Public: "[::1]:0", private: "[::1]:1" });
    const loaded = loadConfig({ flags: { config: file }, env: {}, cwd: empty });
    expect(loaded.config.public).toEqual({ host: "::1", port: 0 });
    expect(loaded.config.private).toEqual({ host: "::1", port: 1 });
    expect(loaded.warnings).toEqual([]);
  });

  test.each([
    [{ Queue: 5 }, 'unknown key "Queue" in FILE — did you mean "queue"?'],
    [{ LoginTimeout: 5 }, 'unknown key "LoginTimeout" in FILE — did you mean "loginTimeout"?'],
    [{ PUBLIC: ":1" }, 'unknown key "PUBLIC" in FILE — did you mean "public"?'],
    [{ login_timeout: 5 }, 'unknown key "login_timeout" in FILE — did you mean "loginTimeout"?'],
    [{ Color: "blue" }, 'unknown key "Color" in FILE'],
    [{ public: ":1", Public: ":2" }, '"public" and "Public" in FILE are the same setting: keep one'],
  ])("file keys are matched exactly: %p fails with %p", (content, message) => {
    const file = writeConfig("keys.json", content);
    expect(() => loadConfig({ flags: { config: file }, env: {}, cwd: empty })).toThrow(message.replace("FILE", file));
  });

  test("an unknown WEBTALK_* variable is a warning naming the closest; ctl's own is not unknown", () => {
    const env = { WEBTALK_PUBIC: ":1", WEBTALK_ZZZ: "1", WEBTALK_TLS_CA: "ca.pem", WEBTALK_QUEUE: "3" };
    const loaded = loadConfig({ flags: {}, env, cwd: empty });
    expect(loaded.config.queue).toBe(3);
    expect(loaded.warnings).toEqual([
      "unknown variable WEBTALK_PUBIC (ignored) — did you mean WEBTALK_PUBLIC?",
      "unknown variable WEBTALK_ZZZ (ignored)",
    ]);
  });

  test.each([
    [{ queue: "-1" }, {}, 'invalid --queue value "-1"'],
    [{ public: "nowhere" }, {}, 'invalid --public value "nowhere": expected HOST:PORT'],
    [{ public: "1.2.3.4:70000" }, {}, 'invalid --public value "1.2.3.4:70000"'],
    [{}, { WEBTALK_LOGIN_TIMEOUT: "soon" }, 'invalid WEBTALK_LOGIN_TIMEOUT value "soon"'],
    [{}, { WEBTALK_DUPLICATE: "both" }, 'invalid WEBTALK_DUPLICATE value "both": expected one of replace, reject'],
    [{ "log-level": "loud" }, {}, 'invalid --log-level value "loud"'],
    [{ "log-format": "xml" }, {}, 'invalid --log-format value "xml": expected one of pretty, json'],
    [{}, { WEBTALK_ADMIN: "on" }, 'invalid WEBTALK_ADMIN value "on": expected HOST:PORT'],
    [{ path: "no-slash" }, {}, 'invalid --path value "no-slash"'],
    [{}, { WEBTALK_UPSTREAM: "maybe" }, 'invalid WEBTALK_UPSTREAM value "maybe": expected true or false (or 1, 0, yes, no)'],
    [{ "max-message-rate": "-5" }, {}, 'invalid --max-message-rate value "-5"'],
    [{}, { WEBTALK_MAX_MESSAGE_RATE: "fast" }, 'invalid WEBTALK_MAX_MESSAGE_RATE value "fast"'],
    [{ origins: "example.com" }, {}, 'invalid --origins value "example.com": expected origins like https://example.com'],
    [{ config: "/does/not/exist.ini" }, {}, 'invalid --config value "/does/not/exist.ini": no such file'],
    [{}, { WEBTALK_CONFIG: "/nope.json" }, 'invalid WEBTALK_CONFIG value "/nope.json": no such file'],
    [{ data: " " }, {}, 'invalid --data value " ": expected a file name'],
    [{ data: ":memory:" }, {}, 'invalid --data value ":memory:": expected a file name, not a SQLite URI'],
    [{}, { WEBTALK_DATA_SYNC: "off" }, 'invalid WEBTALK_DATA_SYNC value "off": expected one of full, normal'],
  ])("flags %p env %p fail with %p", (flags, env, message) => {
    expect(() => loadConfig({ flags, env, cwd: empty })).toThrow(ConfigError);
    expect(() => loadConfig({ flags, env, cwd: empty })).toThrow(message);
  });

  test("an invalid file names the file, line and column; a bad value in it names the key", () => {
    const broken = writeConfig("broken.json", "{ not json");
    expect(() => loadConfig({ flags: { config: broken }, env: {}, cwd: empty })).toThrow(`${broken}:1:3: expected a key in double quotes, found 'n'`);
    const comma = writeConfig("comma.json", '{\n  "queue": 5,\n  "path": "/x"\n  "duplicate": "reject"\n}\n');
    expect(() => loadConfig({ flags: { config: comma }, env: {}, cwd: empty })).toThrow(`${comma}:4:3: expected "," or "}"`);
    const trailing = writeConfig("trailing.json", '{\n  "queue": 5,\n}');
    expect(() => loadConfig({ flags: { config: trailing }, env: {}, cwd: empty })).toThrow(`${trailing}:3:1: expected a key in double quotes, found '}'`);
    const ini = writeConfig("old.ini", "Public = :12345\n");
    expect(() => loadConfig({ flags: { config: ini }, env: {}, cwd: empty })).toThrow(`${ini}:1:1: expected a value, found 'P' (webtalk.ini holds JSON`);
    const bad = writeConfig("bad.json", { Private: 12 });
    expect(() => loadConfig({ flags: { config: bad }, env: {}, cwd: empty })).toThrow(`invalid "Private" in ${bad} value 12`);
  });
});

describe("the webtalk command", () => {
  const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? "", HOME: dir, ...extra });

  test("--help lists every flag with its variable; --version prints the version", async () => {
    const help = await runToExit([process.execPath, MAIN, "--help"], { env: env(), cwd: dir });
    expect(help.code).toBe(0);
    for (const setting of settings) {
      expect(help.stdout).toContain(`--${setting.flag}`);
      expect(help.stdout).toContain(envName(setting.flag));
    }
    expect(help.stdout).toContain("--config");
    expect(help.stdout).toContain("WEBTALK_LOGIN_TIMEOUT");
    const version = await runToExit([process.execPath, MAIN, "--version"], { env: env(), cwd: dir });
    expect(version.stdout.trim()).toMatch(/^webtalk \d+\.\d+\.\d+ \(commit \w+, bun [\d.]+\)$/);
  });

  test("a bad value exits 2 with one clear line on stderr", async () => {
    const result = await runToExit([process.execPath, MAIN, "--queue", "many"], { env: env(), cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe('webtalk: invalid --queue value "many": expected a whole number from 0 to 10000000');
  });

  test("a bad variable, a missing --config file and an unknown flag exit 2", async () => {
    const variable = await runToExit([process.execPath, MAIN], { env: env({ WEBTALK_PUBLIC: "x" }), cwd: dir });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toContain('invalid WEBTALK_PUBLIC value "x"');
    const missing = await runToExit([process.execPath, MAIN, "--config", "missing.ini"], { env: env(), cwd: dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('invalid --config value "missing.ini": no such file');
    const unknown = await runToExit([process.execPath, MAIN, "--publik", "1:1"], { env: env(), cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown flag --publik");
  });

  test("webtalk.ini in the working directory: a syntax error is FILE:LINE:COLUMN and exit 2", async () => {
    const cwd = mkdtempSync(join(dir, "ini-"));
    writeFileSync(join(cwd, "webtalk.ini"), '{\n  "public": "127.0.0.1:0",\n  "private": "127.0.0.1:0"\n  "queue": 5\n}\n');
    const result = await runToExit([process.execPath, MAIN], { env: env(), cwd });
    expect(result.stderr.trim()).toBe(`webtalk: webtalk.ini:4:3: expected "," or "}", found '"'`);
    expect(result.code).toBe(2);
  });

  test("a mis-cased key is exit 2 naming the key meant; the original's Public and Private still start a server", async () => {
    const cwd = mkdtempSync(join(dir, "keys-"));
    writeFileSync(join(cwd, "webtalk.ini"), JSON.stringify({ public: "127.0.0.1:0", private: "127.0.0.1:0", Queue: 5 }));
    const wrong = await runToExit([process.execPath, MAIN], { env: env(), cwd });
    expect(wrong.stderr.trim()).toBe('webtalk: unknown key "Queue" in webtalk.ini — did you mean "queue"?');
    expect(wrong.code).toBe(2);
    writeFileSync(join(cwd, "webtalk.ini"), JSON.stringify({ Public: "127.0.0.1:0", Private: "127.0.0.1:0", queue: 5 }));
    const server = await spawnServer([process.execPath, MAIN], { env: env(), cwd });
    expect(server.publicUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/webtalk$/);
    expect(await server.stop()).toBe(0);
  });

  test("precedence end to end: the flag wins over env and file, and the log states the real ports", async () => {
    const file = writeConfig("e2e.json", { Public: "127.0.0.1:0", Private: "127.0.0.1:0", path: "/from-file" });
    const server = await spawnServer([process.execPath, MAIN, "--config", file, "--path", "/from-flag"], {
      env: env({ WEBTALK_PATH: "/from-env" }),
      cwd: dir,
    });
    expect(server.publicUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/from-flag$/);
    expect(server.publicUrl).not.toContain(":0/");
    const ctl = await ControlClient.connect(server.privatePort);
    expect(await ctl.call("[newuser]")).toMatch(/^\[ok\] \d{16}!/);
    ctl.close();
    expect(await server.stop()).toBe(0);
  });

  test("an address in use is one clear line and exit code 1", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const result = await runToExit([process.execPath, MAIN, "--public", "127.0.0.1:0", "--private", `127.0.0.1:${blocker.port}`], {
      env: env(),
      cwd: dir,
    });
    blocker.stop(true);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(`webtalk: private address 127.0.0.1:${blocker.port} is already in use`);
  });
});
