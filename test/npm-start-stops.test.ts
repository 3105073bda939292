// README and docs/getting-started.md run the server with `npm start -- FLAGS`. Whatever stops that
// command with SIGTERM (a supervisor, `kill` of the PID it started, a container's stop) must stop the
// server, through its drain: npm forwards SIGTERM to the script's shell, and a `sh -c "bun …"` that
// does not exec leaves Bun running as an orphan, ports bound, never logging the SIGTERM. Real npm, real
// server; skipped where npm is not on PATH.

import { expect, test } from "bun:test";
import { within } from "./helpers.ts";
import { LOOPBACK, ROOT } from "./process.ts";

const npm = Bun.which("npm");
if (!npm) console.warn("SKIPPING the npm start test: npm is not on PATH");

test.skipIf(!npm)("SIGTERM to `npm start` stops the server itself (it logs the SIGTERM and its ports close)", async () => {
  const proc = Bun.spawn([npm!, "start", "--", ...LOOPBACK, "--admin", "127.0.0.1:0"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" },
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += new TextDecoder().decode(chunk);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  let privatePort = 0;
  try {
    await within(
      (async () => {
        while (!/private\s+tcp:\/\/[^\s]+:(\d+)/.test(text)) await Bun.sleep(20);
      })(),
      "npm start's startup lines",
      20_000,
    );
    privatePort = Number(/private\s+tcp:\/\/[^\s]+:(\d+)/.exec(text)![1]);
    proc.kill("SIGTERM");
    await within(proc.exited, "npm to exit", 10_000);
    await Bun.sleep(1_000);
    expect(text).toContain("SIGTERM: shutting down");
    // The control port is closed: nothing is left listening.
    const connected = await Bun.connect({ hostname: "127.0.0.1", port: privatePort, socket: { data() {} } }).then(
      (socket) => (socket.end(), true),
      () => false,
    );
    expect(connected).toBe(false);
  } finally {
    proc.kill("SIGKILL");
    // An orphaned server (what this test catches) is ended by its PID, found by its unique port.
    if (privatePort) {
      const found = Bun.spawnSync(["sh", "-c", `ss -ltnpH 'sport = :${privatePort}' | grep -o 'pid=[0-9]*' | cut -d= -f2`]);
      for (const pid of found.stdout.toString().split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
    }
  }
}, 40_000);
