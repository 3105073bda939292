// The many-sources soak at CI size: `bun run soak -- --sources 100000` as a subprocess, whispering to
// 100,000 distinct offline users with default flags, must print a PASS verdict (RSS flat after warm-up).
// SOAK_SECONDS changes the duration.

import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { within } from "./helpers.ts";
import { ROOT } from "./process.ts";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 15);
/** Creating the users and stopping the server, on a busy CI machine. */
const SLACK_MS = 30_000;

test(`soak: ${SECONDS} s whispering to 100,000 distinct offline users, RSS flat after warm-up`, async () => {
  const cmd = [process.execPath, resolve(ROOT, "scripts/soak.ts"), "--sources", "100000", "--duration", String(SECONDS)];
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
    expect(code).toBe(0);
  } finally {
    // SIGTERM first: the soak then ends its server itself; SIGKILL would orphan it.
    if (soak.exitCode === null) {
      soak.kill("SIGTERM");
      await within(soak.exited, "the soak to stop", 5_000).catch(() => soak.kill("SIGKILL"));
    }
  }
}, SECONDS * 1000 + SLACK_MS + 5_000);
