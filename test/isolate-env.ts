import { afterAll } from "bun:test";
import type { Subprocess } from "bun";

// Preloaded before every test file (bunfig.toml [test] preload): the suite runs on its own settings,
// never on the WEBTALK_* settings of the shell it was started from (an admin shell that sourced
// /etc/webtalk.env, a container with the image's variables). Otherwise every server a test spawns
// would inherit them: WEBTALK_REDIS would join, and write into, whatever cluster the shell points at;
// WEBTALK_SECRET would refuse the test's own control connections. The suite's own switches stay.

const SUITE_SWITCHES = new Set(["WEBTALK_TEST_REDIS", "WEBTALK_TEST_REDIS_CLUSTER", "WEBTALK_TEST_REDIS_KIT", "WEBTALK_TEST_REDIS_KIT_MASTERS", "WEBTALK_ATTACK"]);

for (const name of Object.keys(process.env)) {
  if (name.toUpperCase().startsWith("WEBTALK_") && !SUITE_SWITCHES.has(name)) delete process.env[name];
}

// Once every file ran: the processes tests spawned and left running (a test that failed before it
// stopped them) are ended by their PID (test/process.ts keeps them here).
afterAll(() => {
  for (const proc of (globalThis as { __webtalkSpawned?: Set<Subprocess> }).__webtalkSpawned ?? []) proc.kill("SIGKILL");
});
