// Runs test files again in a child `bun test` with other settings (a Redis, a Redis Cluster) and
// expects them all to pass: how the protocol and cluster suites are re-run against other backends.

import { expect } from "bun:test";
import { ROOT, runToExit } from "./process.ts";

/** The end-to-end suites of the core, presence, resume, sessions and SSE protocols. */
export const PROTOCOL_SUITES = ["test/control.test.ts", "test/browser.test.ts", "test/presence.test.ts", "test/resume.test.ts", "test/sessions.test.ts", "test/sse.test.ts"];

export async function expectSuitesPass(suites: string[], env: Record<string, string>, atLeast: number, timeoutMs: number): Promise<void> {
  const run = await runToExit([process.execPath, "test", "--timeout", "60000", ...suites], { cwd: ROOT, env: { ...process.env, ...env }, timeoutMs });
  const summary = run.stdout + run.stderr;
  const passed = Number(/(\d+) pass/.exec(summary)?.[1] ?? 0);
  if (run.code !== 0) console.error(failureContext(summary));
  expect(run.code).toBe(0);
  expect(summary).toMatch(/\b0 fail/);
  expect(passed).toBeGreaterThanOrEqual(atLeast);
}

/** Each failing test's name with the 30 lines the child printed before it: the error and what led to it. */
function failureContext(summary: string): string {
  const lines = summary.split("\n");
  const shown: string[] = [];
  lines.forEach((line, i) => {
    if (line.startsWith("(fail)")) shown.push(...lines.slice(Math.max(0, i - 30), i + 1), "");
  });
  return shown.join("\n");
}
