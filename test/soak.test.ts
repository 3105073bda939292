// The soak at CI size: `bun run soak` as a subprocess must print a PASS verdict and exit 0.
// SOAK_SECONDS and SOAK_SEED change the size and replay a run.

import { expect, test } from "bun:test";
import { runSoak } from "./soak-run.ts";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 12);
/** Setup, reconnecting everyone, killing everything, verifying and up to 30 s for memory to settle, on a busy CI machine. */
const SLACK_MS = 50_000;

test(`soak: ${SECONDS} s, 200 browsers, 4 backends, nothing lost, duplicated, reordered or misdelivered`, async () => {
  const args = ["--duration", String(SECONDS), "--browsers", "200", "--backends", "4"];
  if (process.env.SOAK_SEED) args.push("--seed", process.env.SOAK_SEED);
  const verdict = await runSoak(args, SECONDS * 1000 + SLACK_MS);
  expect(verdict).toContain(" 0 lost, 0 duplicated, 0 out of order, 0 misdelivered, 0 wrong replies/events/close codes");
}, SECONDS * 1000 + SLACK_MS + 5_000);
