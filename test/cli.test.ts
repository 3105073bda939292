// The server's command line, run as a real process: every word is accounted for (exit 2 naming it,
// with the closest flag or command), --help is grouped, wrapped and plain when piped, --version
// names the build, and a mistyped WEBTALK_* variable is a warning naming the one meant.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { envName, GROUPS, settings } from "../src/config/schema.ts";
import { LOOPBACK, MAIN, ROOT, runToExit, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const baseEnv = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? "", HOME: dir, ...extra });
const webtalk = (args: string[], extra: Record<string, string> = {}) =>
  runToExit([process.execPath, MAIN, ...args], { env: baseEnv(extra), cwd: dir, timeoutMs: 15_000 });
const ESC = "\x1b";

describe("stray words and unknown flags", () => {
  test.each([
    [["version"], 'unknown command "version" — did you mean --version?'],
    [["help"], 'unknown command "help" — did you mean --help?'],
    [["serve"], 'unknown command "serve": webtalk runs the server with no command'],
    [["127.0.0.1:8080"], 'unexpected argument "127.0.0.1:8080" — did you mean --public 127.0.0.1:8080?'],
    [[...LOOPBACK, "ctl", "stats"], '"ctl" must come first: webtalk ctl …'],
    [["--pubic", "127.0.0.1:0"], "unknown flag --pubic — did you mean --public?"],
    [["--Queue=5"], "unknown flag --Queue — did you mean --queue?"],
    [["--verison"], "unknown flag --verison — did you mean --version?"],
    // Followed by another flag: "--public" is not the queue, and its address is no stray.
    [["--queue"], "--queue needs a value: --queue VALUE, or --queue=VALUE"],
  ])("webtalk %p exits 2: %s", async (args, message) => {
    // The real ports are given, so a server that starts anyway would be seen running, not exit 2.
    const result = await webtalk(args[0] === "--pubic" ? args : [...args, ...LOOPBACK]);
    expect(result.stderr).toContain(message);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stdout).toBe("");
    expect(result.code).toBe(2);
  });

  test("a bad boolean is exit 2 naming it, from a flag, a variable or the file alike", async () => {
    const file = join(dir, "upstream.json");
    writeFileSync(file, JSON.stringify({ upstream: "maybe" }));
    for (const [args, env, name] of [
      [["--upstream=maybe"], {}, "--upstream"],
      [["--upstream", "maybe"], {}, "--upstream"],
      [[], { WEBTALK_UPSTREAM: "maybe" }, "WEBTALK_UPSTREAM"],
      [["--config", file], {}, '"upstream" in'],
    ] as const) {
      const result = await webtalk([...args, ...LOOPBACK], env);
      expect(result.stderr).toContain(`invalid ${name}`);
      expect(result.stderr).toContain('value "maybe": expected true or false');
      expect(result.code).toBe(2);
    }
  });
});

describe("--help", () => {
  const visible = (text: string) => text.replaceAll(/\x1b\[[0-9;]*m/g, "").replaceAll("\r", "");

  test("piped: grouped, at most 100 columns, no colour, lists ctl and every setting", async () => {
    const result = await webtalk(["--help"]);
    expect(result.code).toBe(0);
    const help = result.stdout;
    expect(help).not.toContain(ESC);
    for (const line of help.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
    expect(help).toContain("webtalk ctl COMMAND");
    expect(help).toContain("webtalk ctl --help");
    // The groups in their order, each setting under its own.
    const headings = Object.keys(GROUPS).map((group) => help.indexOf(`\n${group[0]!.toUpperCase()}${group.slice(1)}:`));
    expect(headings.every((at) => at > 0)).toBe(true);
    expect([...headings].sort((a, b) => a - b)).toEqual(headings);
    for (const setting of settings) {
      const at = help.search(new RegExp(`\\n  --${setting.flag}[ \\n]`));
      expect(at).toBeGreaterThan(0);
      const group = Object.keys(GROUPS).indexOf(setting.group);
      expect(at).toBeGreaterThan(headings[group]!);
      if (group + 1 < headings.length) expect(at).toBeLessThan(headings[group + 1]!);
      expect(help).toContain(envName(setting.flag));
    }
  });

  test("COLUMNS narrows the piped help", async () => {
    const result = await webtalk(["--help"], { COLUMNS: "60" });
    for (const line of result.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(60);
  });

  // A terminal needs a pseudo-terminal: util-linux's `script` gives one.
  const script = Bun.which("script");
  test.skipIf(!script)("on a terminal: its width and colour; NO_COLOR turns the colour off", async () => {
    const inTerminal = (extra: Record<string, string>) =>
      runToExit([script!, "-qec", `stty cols 70; '${process.execPath}' '${MAIN}' --help`, "/dev/null"], {
        env: baseEnv({ TERM: "xterm", ...extra }),
        cwd: dir,
        timeoutMs: 15_000,
      });
    const colour = await inTerminal({});
    expect(colour.code).toBe(0);
    expect(colour.stdout).toContain(`${ESC}[1mUsage`);
    for (const line of visible(colour.stdout).split("\n")) expect(line.length).toBeLessThanOrEqual(70);
    expect(visible(colour.stdout).split("\n").some((line) => line.length > 60)).toBe(true);
    const plain = await inTerminal({ NO_COLOR: "1" });
    expect(plain.stdout).toContain("Usage");
    expect(plain.stdout).not.toContain(ESC);
  });
});

describe("--version", () => {
  test("--version and -v print the version, the commit and the Bun version", async () => {
    const git = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT });
    const commit = git.exitCode === 0 ? git.stdout.toString().trim() : "unknown";
    for (const flag of ["--version", "-v"]) {
      const result = await webtalk([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`webtalk ${pkg.version} (commit ${commit}, bun ${Bun.version})\n`);
    }
  });
});

describe("WEBTALK_* variables", () => {
  test("an unknown one is a warning at start naming the closest, and the server still runs", async () => {
    const server = await spawnServer([process.execPath, MAIN, ...LOOPBACK], {
      env: baseEnv({ WEBTALK_PUBIC: "127.0.0.1:0", WEBTALK_NOTHING_LIKE_IT: "1", WEBTALK_TLS_CA: "/ca.pem" }),
      cwd: dir,
    });
    try {
      expect(server.output()).toContain("unknown variable WEBTALK_PUBIC (ignored) — did you mean WEBTALK_PUBLIC?");
      expect(server.output()).toMatch(/unknown variable WEBTALK_NOTHING_LIKE_IT \(ignored\)\n/);
      // webtalk ctl's own variable, often in the same environment, is no typo.
      expect(server.output()).not.toContain("WEBTALK_TLS_CA");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
