// Breaker test (issue 14: --data files deleted, "nothing lost, no surprise"). The README promises that
// once a backend has read [ok] the command's effect survives any stop, and that /healthz and /readyz
// answer 503 naming the data file while its writes fail. A data file deleted (or replaced) while the
// server runs — a cleanup script, an operator "resetting" it, a restore over a running server — leaves
// the server writing into a file nobody will open again: every later [ok] is lost at the next start,
// a second webtalk can start on the same path (the lock was on the deleted file), and /readyz said
// "ready" throughout. The operator must at least be told: /healthz and /readyz answer 503 naming the
// file, as for any other data file whose writes do not last.

import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient, newUser } from "./helpers.ts";
import { MAIN, LOOPBACK, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-deleted-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function get(base: string, path: string): Promise<[number, string]> {
  const response = await fetch(`${base}${path}`);
  return [response.status, await response.text()];
}

for (const how of ["deleted", "replaced"] as const) {
  test(`a data file ${how} while the server runs: /healthz and /readyz answer 503 naming it`, async () => {
    const data = join(dir, `${how}.db`);
    const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", data]);
    try {
      const ctl = await ControlClient.connect(server.privatePort);
      await newUser(ctl);
      expect(await get(server.adminUrl!, "/readyz")).toEqual([200, "ready\n"]);
      if (how === "replaced") copyFileSync(data, `${data}.copy`);
      for (const file of [data, `${data}-wal`, `${data}-shm`]) rmSync(file, { force: true });
      if (how === "replaced") copyFileSync(`${data}.copy`, data);

      // The server goes on answering [ok]; none of it will be in the file at the path.
      await newUser(ctl);
      expect(await ctl.call("[store] k!v")).toBe("[ok] stored k");
      const [status, body] = await get(server.adminUrl!, "/readyz");
      const [healthStatus, health] = await get(server.adminUrl!, "/healthz");
      console.log(`after the data file was ${how}: /readyz ${status} ${body.trim()}; /healthz ${healthStatus} ${health}`);
      expect(status).toBe(503);
      expect(body).toMatch(/^not ready: [^\n]+\n$/);
      expect(body).toContain(data);
      expect(healthStatus).toBe(503);
      expect(health).toContain(data);
      ctl.close();
      expect(await server.stop()).toBe(0);
    } finally {
      if (server.proc.exitCode === null) await server.stop("SIGKILL");
    }
  }, 30_000);
}
