// Server processes that never outlive the test that started them, a failed expectation included.

import { afterEach } from "bun:test";
import { spawnServer, type Spawned } from "./process.ts";

/**
 * A spawnServer for this test file whose processes are killed by their PID (SIGKILL) after each test,
 * waiting for each to exit: a process with files open on a disk keeps it busy (a tmpfs cannot be
 * unmounted) until it has.
 */
export function spawnPerTest(): typeof spawnServer {
  const started: Spawned[] = [];
  afterEach(async () => {
    for (const server of started.splice(0)) {
      server.proc.kill("SIGKILL");
      await server.proc.exited;
    }
  });
  return async (...args) => {
    const server = await spawnServer(...args);
    started.push(server);
    return server;
  };
}
