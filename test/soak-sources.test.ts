// The many-sources soak at CI size: `bun run soak -- --sources 100000` as a subprocess, whispering to
// 100,000 distinct offline users with default flags, must print a PASS verdict (RSS flat after warm-up).
// SOAK_SECONDS changes the duration.

import { test } from "bun:test";
import { runSoak } from "./soak-run.ts";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 15);
/** Creating the users and stopping the server, on a busy CI machine. */
const SLACK_MS = 30_000;

test(`soak: ${SECONDS} s whispering to 100,000 distinct offline users, RSS flat after warm-up`, async () => {
  await runSoak(["--sources", "100000", "--duration", String(SECONDS)], SECONDS * 1000 + SLACK_MS);
}, SECONDS * 1000 + SLACK_MS + 5_000);
