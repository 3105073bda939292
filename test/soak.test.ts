// The soak at CI size: `bun run soak` as a subprocess must print a PASS verdict and exit 0.
// SOAK_SECONDS and SOAK_SEED change the size and replay a run.

import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { within } from "./helpers.ts";
import { ROOT } from "./process.ts";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 12);
/** Setup, reconnecting everyone, killing everything, verifying and up to 30 s for memory to settle, on a busy CI machine. */
const SLACK_MS = 50_000;

test(`soak: ${SECONDS} s, 200 browsers, 4 backends, nothing lost, duplicated, reordered or misdelivered`, async () => {
  const cmd = [process.execPath, resolve(ROOT, "scripts/soak.ts"), "--duration", String(SECONDS), "--browsers", "200", "--backends", "4"];
  if (process.env.SOAK_SEED) cmd.push("--seed", process.env.SOAK_SEED);
  const soak = Bun.spawn(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  try {
    const [stdout, stderr, code] = await within(
      Promise.all([new Response(soak.stdout).text(), new Response(soak.stderr).text(), soak.exited]),
      "the soak to finish",
      SECONDS * 1000 + SLACK_MS,
    );
    const verdict = stdout.trim();
    console.log(verdict);
    if (code !== 0) console.error(stderr);
    expect(verdict).toStartWith("soak: PASS ");
    expect(verdict).toContain(" 0 lost, 0 duplicated, 0 out of order, 0 misdelivered, 0 wrong replies/events/close codes");
    expect(code).toBe(0);
  } finally {
    // SIGTERM first: the soak then ends its server and workers itself; SIGKILL would orphan them.
    if (soak.exitCode === null) {
      soak.kill("SIGTERM");
      await within(soak.exited, "the soak to stop", 5_000).catch(() => soak.kill("SIGKILL"));
    }
  }
}, SECONDS * 1000 + SLACK_MS + 5_000);
