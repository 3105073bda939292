// Runs `scripts/soak.ts` as a subprocess, bounded in time, and returns its verdict line.

import { expect } from "bun:test";
import { resolve } from "node:path";
import { within } from "./helpers.ts";
import { ROOT } from "./process.ts";

/** Runs the soak with `args`, expects a PASS verdict and exit 0, and returns the verdict. */
export async function runSoak(args: string[], timeoutMs: number): Promise<string> {
  const soak = Bun.spawn([process.execPath, resolve(ROOT, "scripts/soak.ts"), ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  try {
    const [stdout, stderr, code] = await within(
      Promise.all([new Response(soak.stdout).text(), new Response(soak.stderr).text(), soak.exited]),
      "the soak to finish",
      timeoutMs,
    );
    const verdict = stdout.trim();
    console.log(verdict);
    if (code !== 0) console.error(stderr);
    expect(verdict).toStartWith("soak: PASS ");
    expect(code).toBe(0);
    return verdict;
  } finally {
    // SIGTERM first: the soak then ends its server and workers itself; SIGKILL would orphan them.
    if (soak.exitCode === null) {
      soak.kill("SIGTERM");
      await within(soak.exited, "the soak to stop", 5_000).catch(() => soak.kill("SIGKILL"));
    }
  }
}
