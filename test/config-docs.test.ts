// docs/reference/configuration.md is generated from the config schema (scripts/config-docs.ts):
// a setting added, renamed or re-described without regenerating it fails here.

import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { envName, settings } from "../src/config/schema.ts";
import { ROOT, runToExit } from "./process.ts";

const SCRIPT = join(ROOT, "scripts/config-docs.ts");
const PAGE = join(ROOT, "docs/reference/configuration.md");
const dir = mkdtempSync(join(tmpdir(), "webtalk-config-docs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the committed configuration reference is what the schema generates", async () => {
  const check = await runToExit([process.execPath, SCRIPT, "--check"]);
  expect(check.stderr).toBe("");
  expect(check.code).toBe(0);
  const page = readFileSync(PAGE, "utf8");
  for (const setting of settings) expect(page).toContain(`| \`${envName(setting.flag)}\` |`);
});

test("--check fails on a page that drifted from the schema, and a run without it rewrites the page", async () => {
  const copy = join(dir, "configuration.md");
  copyFileSync(PAGE, copy);
  writeFileSync(copy, readFileSync(copy, "utf8").replace("WebSocket address browsers connect to", "where browsers go"));
  const stale = await runToExit([process.execPath, SCRIPT, "--check", "--out", copy]);
  expect(stale.code).toBe(1);
  expect(stale.stderr).toContain("is out of date with src/config/schema.ts: run npm run docs:config");
  expect((await runToExit([process.execPath, SCRIPT, "--out", copy])).code).toBe(0);
  expect(readFileSync(copy, "utf8")).toBe(readFileSync(PAGE, "utf8"));
});
