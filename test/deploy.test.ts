// Issue 16 (ops): the deploy files, checked without a Docker daemon or a systemd PID 1.
// - deploy/Dockerfile: multi-stage, its build stage's COPY sources exist in the checkout and pass
//   .dockerignore, and exactly those files are enough for `npm run build` to make dist/webtalk;
//   the runtime stage copies that binary, has VOLUME/WORKDIR/HEALTHCHECK on /livez, and no
//   version in a file name.
// - deploy/docker-entrypoint.sh: refuses a control port beyond loopback without a secret.
// - deploy/webtalk.service: `systemd-analyze security --offline=true` scores it 2.0 or below.

import { expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runToExit } from "./process.ts";

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped; `stage` counts FROMs from 0. */
function instructions(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, " ").split("\n").filter((line) => line.trim() !== "" && !line.trim().startsWith("#"));
  let stage = -1;
  return joined.map((line) => {
    const [, op = "", args = ""] = /^\s*(\S+)\s*(.*)$/.exec(line)!;
    if (op.toUpperCase() === "FROM") stage++;
    return { op: op.toUpperCase(), args: args.trim(), stage };
  });
}

const dockerfile = instructions(readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8"));
const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));

/** The context paths a COPY without --from reads (every word but the last, flags dropped). */
function contextSources(copy: Instruction): string[] {
  const words = copy.args.split(/\s+/).filter((w) => !w.startsWith("--"));
  return words.slice(0, -1);
}

test("Dockerfile: a Node build stage runs npm ci and npm run build; a slim runtime stage copies dist/webtalk", () => {
  const froms = dockerfile.filter((i) => i.op === "FROM");
  expect(froms.length).toBe(2);
  expect(froms[0]!.args).toMatch(/^node:\S+ AS build$/i);
  const runs = dockerfile.filter((i) => i.op === "RUN" && i.stage === 0).map((i) => i.args).join("\n");
  expect(runs).toContain("npm ci");
  expect(runs).toContain("npm run build");
  const binary = dockerfile.find((i) => i.op === "COPY" && i.stage === 1 && i.args.startsWith("--from=build"));
  expect(binary?.args).toMatch(/\/dist\/webtalk \/usr\/local\/bin\/webtalk$/);
  const at = (op: string) => dockerfile.filter((i) => i.op === op && i.stage === 1).map((i) => i.args);
  expect(at("VOLUME")).toEqual(["/var/lib/webtalk"]);
  expect(at("WORKDIR")).toEqual(["/var/lib/webtalk"]);
  expect(at("USER").length).toBe(1);
  expect(at("USER")[0]).not.toMatch(/^(root|0)$/);
  // Liveness: an unhealthy container is replaced (Swarm), and a Redis outage must not replace them all.
  expect(at("HEALTHCHECK")[0]).toContain("/livez");
  expect(runs).toContain('WEBTALK_COMMIT="$WEBTALK_COMMIT"');
  const env = at("ENV").join(" ");
  expect(env).toContain("WEBTALK_ADMIN=0.0.0.0:");
  expect(env).toContain("WEBTALK_PRIVATE=127.0.0.1:");
  expect(env).toContain("WEBTALK_DATA=/var/lib/webtalk/");
  // No file name with a version in it: a release must not need the Dockerfile edited.
  for (const i of dockerfile) if (["COPY", "ARG", "ENTRYPOINT", "CMD"].includes(i.op)) expect(i.args).not.toMatch(/\d+\.\d+\.\d+/);
});

test("Dockerfile: every COPY source exists in the checkout and is not excluded by .dockerignore", () => {
  for (const must of ["node_modules", "dist", ".git"]) expect(ignored).toContain(must);
  const copies = dockerfile.filter((i) => i.op === "COPY" && !i.args.startsWith("--from"));
  expect(copies.length).toBeGreaterThan(0);
  for (const copy of copies) {
    for (const source of contextSources(copy)) {
      expect(existsSync(join(ROOT, source)), `COPY ${source}`).toBe(true);
      const top = source.split("/")[0]!;
      expect(ignored.includes(source) || ignored.includes(top), `${source} excluded by .dockerignore`).toBe(false);
    }
  }
});

test("Dockerfile: the build stage's COPYed files alone build dist/webtalk with npm run build's steps", async () => {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-docker-context-"));
  try {
    for (const copy of dockerfile.filter((i) => i.op === "COPY" && i.stage === 0)) {
      for (const source of contextSources(copy)) cpSync(join(ROOT, source), join(dir, source), { recursive: true });
    }
    // What `npm ci` would install (the same lockfile): linked, not downloaded.
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { scripts: Record<string, string> };
    for (const script of [pkg.scripts.prepare!, pkg.scripts.build!]) {
      const [tool, ...args] = script.split(" ");
      expect(tool).toBe("bun");
      const built = await runToExit([process.execPath, ...args], { cwd: dir, timeoutMs: 180_000 });
      expect(built.code, built.stderr).toBe(0);
    }
    const version = await runToExit([join(dir, "dist/webtalk"), "--version"], { cwd: dir });
    expect(version.stdout.trim()).toMatch(/\d+\.\d+\.\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 200_000);

test("docker-entrypoint.sh: a control port beyond loopback needs a secret; loopback or a secret runs webtalk", async () => {
  const entry = join(ROOT, "deploy/docker-entrypoint.sh");
  const run = (env: Record<string, string>, args: string[] = []) =>
    runToExit(["sh", entry, ...args], { env: { PATH: process.env.PATH, WEBTALK_BIN: "/bin/echo", ...env } });
  const open = await run({ WEBTALK_PRIVATE: "0.0.0.0:12344" });
  expect(open.code).toBe(2);
  expect(open.stderr).toContain("WEBTALK_SECRET");
  expect((await run({}, ["--private", "0.0.0.0:12344"])).code).toBe(2);
  expect(await run({ WEBTALK_PRIVATE: "0.0.0.0:12344", WEBTALK_SECRET: "s3" }, ["--x"])).toMatchObject({ code: 0, stdout: "--x\n" });
  expect(await run({ WEBTALK_PRIVATE: "0.0.0.0:12344" }, ["--secret", "s3"])).toMatchObject({ code: 0 });
  expect(await run({ WEBTALK_PRIVATE: "127.0.0.1:12344" })).toMatchObject({ code: 0 });
});

const analyze = Bun.which("systemd-analyze");

test("webtalk.service: StateDirectory and WEBTALK_DATA, and systemd-analyze security scores it 2.0 or below", async () => {
  const unit = readFileSync(join(ROOT, "deploy/webtalk.service"), "utf8");
  expect(unit).toMatch(/^StateDirectory=webtalk$/m);
  // The data file is a variable, so /etc/webtalk.env can move it (test/systemd-env-file-overrides.test.ts).
  expect(unit).toMatch(/^Environment=WEBTALK_DATA=\/var\/lib\/webtalk\/webtalk\.db$/m);
  expect(unit).toMatch(/^ExecStart=\S+webtalk$/m);
  if (!analyze) {
    console.log("SKIPPING systemd-analyze security: systemd-analyze is not installed (apt-get install systemd)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "webtalk-unit-"));
  try {
    cpSync(join(ROOT, "deploy/webtalk.service"), join(dir, "webtalk.service"));
    const result = await runToExit([analyze, "security", "--offline=true", "--no-pager", join(dir, "webtalk.service")], { timeoutMs: 60_000 });
    const overall = /Overall exposure level for webtalk\.service: (\d+\.\d+) (\S+)/.exec(result.stdout + result.stderr);
    if (!overall && /offline/.test(result.stderr)) {
      console.log(`SKIPPING systemd-analyze security: this systemd cannot analyse a unit file offline: ${result.stderr.trim()}`);
      return;
    }
    console.log(`systemd-analyze security: ${overall?.[0]}`);
    expect(overall).not.toBeNull();
    expect(Number(overall![1])).toBeLessThanOrEqual(2.0);
    expect(overall![2]).toBe("OK");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 70_000);
