// `webtalk --version`: which build is running, as a bug report needs it. The commit is baked in by
// scripts/build.ts (`--define WEBTALK_COMMIT=…`); a checkout asks git; anything else says "unknown".

import pkg from "../../package.json" with { type: "json" };

/** Replaced by a string literal at `bun build --compile` time; undeclared when running from source. */
declare const WEBTALK_COMMIT: string | undefined;

/** `webtalk 0.1.0 (commit 0b6edf1, bun 1.4.5)`: one line, so scripts can take it whole. */
export function versionLine(): string {
  return `webtalk ${pkg.version} (commit ${commit()}, bun ${Bun.version})`;
}

function commit(): string {
  if (typeof WEBTALK_COMMIT === "string" && WEBTALK_COMMIT !== "") return WEBTALK_COMMIT;
  return gitCommit(import.meta.dir) ?? "unknown";
}

/** The short commit of the checkout this file is in, or undefined without git or outside one. */
export function gitCommit(dir: string): string | undefined {
  try {
    const git = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: dir, stdout: "pipe", stderr: "ignore" });
    const hash = git.stdout.toString().trim();
    return git.exitCode === 0 && /^[0-9a-f]{4,40}$/.test(hash) ? hash : undefined;
  } catch {
    return undefined; // no git on PATH, or a directory that only exists inside a compiled binary
  }
}
