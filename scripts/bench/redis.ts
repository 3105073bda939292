// Redis as the gold standard for a small-command TCP server: SET pipelined and serial, when installed.

import { pin, track, untrack } from "./processes.ts";
import { cpuBetween, sampleProc } from "./proc.ts";
import type { Figures } from "./scenarios.ts";
import { within } from "./within.ts";

export function redisAvailable(): boolean {
  return Bun.which("redis-server") !== null && Bun.which("redis-benchmark") !== null;
}

/** Starts a throwaway redis-server on a free port (no persistence), runs redis-benchmark twice, stops it. */
export async function benchRedis(opts: {
  pipelined: number;
  serial: number;
  serverCores?: string;
  clientCores?: string;
}): Promise<{ pipelined: Figures; serial: Figures }> {
  const port = await freePort();
  const server = Bun.spawn(
    ["redis-server", "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--loglevel", "warning"],
    { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
  );
  track(server);
  try {
    await untilListening(port, server);
    if (opts.serverCores) await pin(server.pid, opts.serverCores);
    const pipelined = await redisBenchmark(server.pid, port, opts.pipelined, 1000, opts.clientCores);
    const serial = await redisBenchmark(server.pid, port, opts.serial, 1, opts.clientCores);
    return { pipelined, serial };
  } finally {
    server.kill("SIGKILL");
    await within(server.exited, "redis-server to exit", 5_000).catch(() => undefined);
    untrack(server);
  }
}

// One client connection, as webtalk's control scenarios use; -P 1 is a serial round trip.
async function redisBenchmark(pid: number, port: number, count: number, pipeline: number, cores?: string): Promise<Figures> {
  const cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", String(port), "-t", "set", "-c", "1", "-P", String(pipeline), "-n", String(count), "--csv"];
  const s0 = sampleProc(pid);
  const proc = Bun.spawn(cores ? ["taskset", "-c", cores, ...cmd] : cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track(proc);
  try {
    const [out, code] = await within(Promise.all([new Response(proc.stdout).text(), proc.exited]), "redis-benchmark", 120_000);
    const s1 = sampleProc(pid);
    // --csv prints a header, then "SET","RPS",… with quoted numbers.
    const row = out.split("\n").find((line) => line.startsWith('"SET"'));
    const perSec = row ? Number(row.split(",")[1]!.replaceAll('"', "")) : Number.NaN;
    if (code !== 0 || !Number.isFinite(perSec)) throw new Error(`redis-benchmark failed (${code}): ${out}`);
    return { commands: count, perSec, cpuUsPer: cpuBetween(s0, s1).us / count };
  } finally {
    proc.kill("SIGKILL");
    untrack(proc);
  }
}

// Connects until the server answers; fails fast if it exited (the port was taken after all).
export async function untilListening(port: number, server: { exitCode: number | null }): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline && server.exitCode === null) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      return;
    } catch {
      await Bun.sleep(20);
    }
  }
  throw new Error("redis-server did not start listening");
}

/** A free loopback port: bind port 0, note the port, close. */
export async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}
