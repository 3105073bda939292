// The release artifact: `bun run build` makes one executable that serves with no Bun on PATH.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { ROOT, runToExit, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-binary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the compiled binary, with no Bun on PATH, serves a backend, a browser, the browser client and the demo", async () => {
  const binary = join(dir, "webtalk");
  const build = await runToExit([process.execPath, join(ROOT, "scripts/build.ts"), "--outfile", binary]);
  expect(build.code).toBe(0);

  const env = { PATH: "/nonexistent", HOME: dir };
  // The commit is baked in at build time: no git on PATH here, and no checkout around the binary.
  const commit = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT }).stdout.toString().trim() || "unknown";
  expect((await runToExit([binary, "--version"], { env, cwd: dir })).stdout).toBe(`webtalk ${pkg.version} (commit ${commit}, bun ${Bun.version})\n`);

  const server = await spawnServer([binary, "--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--demo"], { env, cwd: dir });
  // The browser client and the demo's files are embedded in the binary, which runs far from the sources.
  const http = `${server.publicUrl.replace("ws://", "http://").replace(/\/webtalk$/, "")}`;
  for (const [path, source] of [
    ["/webtalk.js", "src/client/browser/webtalk.js"],
    ["/", "src/demo/index.html"],
    ["/demo/page.js", "src/demo/page.js"],
  ] as const) {
    expect(await (await fetch(`${http}${path}`)).text()).toBe(await Bun.file(join(ROOT, source)).text());
  }
  expect((await fetch(`${http}/demo/login`, { method: "POST" })).status).toBe(200);
  const ctl = await ControlClient.connect(server.privatePort);
  const user = await newUser(ctl);
  expect(await ctl.call(`[whisper] ${user.id}!from the binary`)).toBe("[ok] message queued");
  const browser = await Browser.open(server.publicUrl);
  browser.send(user.token);
  expect(await browser.messages.next()).toBe("from the binary");
  browser.close();
  ctl.close();
  expect(await server.stop("SIGTERM")).toBe(0);
}, 60_000);
