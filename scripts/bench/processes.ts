// Every process the benchmark starts: spawned, pinned, and always ended by its PID.

import type { Subprocess } from "bun";
import { within } from "./within.ts";

const running = new Set<Subprocess>();
// Whatever happens to the orchestrator, nothing it started outlives it.
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const proc of running) proc.kill("SIGKILL");
    process.exit(130);
  });
}

export function track(proc: Subprocess): void {
  running.add(proc);
}

export function untrack(proc: Subprocess): void {
  running.delete(proc);
}

/** Pins every thread of a process to `cores` (taskset's list syntax, e.g. "0" or "1"). */
export async function pin(pid: number, cores: string): Promise<void> {
  const proc = Bun.spawn(["taskset", "-a", "-p", "-c", cores, String(pid)], { stdout: "ignore", stderr: "pipe" });
  const code = await within(proc.exited, "taskset", 5_000);
  if (code !== 0) throw new Error(`taskset -c ${cores} ${pid} failed: ${await new Response(proc.stderr).text()}`);
}

/** Pins the calling process (new threads inherit it). */
export async function pinSelf(cores: string): Promise<void> {
  await pin(process.pid, cores);
}

/** Whether taskset exists and the machine has at least two cores to split. */
export function canPin(): boolean {
  return Bun.which("taskset") !== null && navigator.hardwareConcurrency >= 2;
}

export interface ServerProcess {
  name: string;
  pid: number;
  publicUrl: string;
  privateHost: string;
  privatePort: number;
  stop(): Promise<void>;
}

/**
 * Starts a server that logs `public  ws://HOST:PORT/PATH` and `private tcp://HOST:PORT` (webtalk at
 * log level info, and the limit server), and waits for both lines.
 */
export async function startServerProcess(name: string, cmd: string[], cores: string | undefined): Promise<ServerProcess> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track(proc);
  let text = "";
  const { promise: ready, resolve } = Promise.withResolvers<void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      // Only the startup lines matter; later output is read and dropped so the pipe never fills.
      if (text.length < 10_000) text += decoder.decode(chunk, { stream: true });
      if (/public\s+ws:\/\/\S+/.test(text) && /private\s+tcp:\/\/\S+/.test(text)) resolve();
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  try {
    await within(Promise.race([ready, proc.exited.then((c) => Promise.reject(new Error(`${name} exited with ${c}: ${text}`)))]), `${name} to start`, 15_000);
  } catch (error) {
    proc.kill("SIGKILL");
    untrack(proc);
    throw error;
  }
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\u001b\[[0-9;]*m/g, "");
  const publicUrl = /public\s+(ws:\/\/\S+)/.exec(plain)![1]!;
  const [, privateHost, privatePort] = /private\s+tcp:\/\/(\S+):(\d+)/.exec(plain)!;
  if (cores) await pin(proc.pid, cores);
  return {
    name,
    pid: proc.pid,
    publicUrl,
    privateHost: privateHost!.replace(/^\[|\]$/g, ""),
    privatePort: Number(privatePort),
    async stop() {
      proc.kill("SIGTERM");
      await within(proc.exited, `${name} to exit`, 5_000).catch(() => undefined);
      proc.kill("SIGKILL");
      untrack(proc);
    },
  };
}
