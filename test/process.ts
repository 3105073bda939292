// Spawning webtalk as a real process (source or compiled binary), always ended by its PID.

import type { Subprocess } from "bun";
import { resolve } from "node:path";
import { within } from "./helpers.ts";

export const ROOT = resolve(import.meta.dir, "..");
export const MAIN = resolve(ROOT, "src/main.ts");
/** Flags that put a spawned server's public and private ports on free loopback ports. */
export const LOOPBACK = ["--public", "127.0.0.1:0", "--private", "127.0.0.1:0"];

export interface Spawned {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  publicUrl: string;
  privatePort: number;
  /** e.g. http://127.0.0.1:41235, when the admin endpoint is on. */
  adminUrl: string | undefined;
  output: () => string;
  /** Sends SIGTERM (or the given signal) and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/**
 * Every process a test spawned and has not ended yet, shared with the preload (isolate-env.ts), whose
 * global afterAll kills what is left once every file ran: a test that fails before it stops its
 * servers does not leave them running. bun test does not emit "exit" for that.
 */
const running: Set<Subprocess> = ((globalThis as { __webtalkSpawned?: Set<Subprocess> }).__webtalkSpawned ??= new Set());
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/**
 * The environment of a spawned process: the admin endpoint on a free port unless the test says
 * otherwise, so no test server ever takes the fixed default port 12346.
 */
function childEnv(env: Record<string, string | undefined> = process.env): Record<string, string | undefined> {
  return { WEBTALK_ADMIN: "127.0.0.1:0", ...env };
}

/** Runs a command to completion (bounded) and returns its exit code and output. */
export async function runToExit(
  cmd: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
) {
  const proc = Bun.spawn(cmd, { env: childEnv(options.env), cwd: options.cwd ?? ROOT, stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  try {
    const [stdout, stderr, code] = await within(
      Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]),
      `${cmd.join(" ")} to exit`,
      options.timeoutMs ?? 20_000,
    );
    return { code, stdout, stderr };
  } finally {
    proc.kill("SIGKILL");
    running.delete(proc);
  }
}

/** Starts a server process and waits until it logs its addresses (admin, when on, is logged first). */
export async function spawnServer(
  cmd: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Spawned> {
  const proc = Bun.spawn(cmd, { env: childEnv(options.env), cwd: options.cwd ?? ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const ready = (async () => {
    for (;;) {
      // [^\s"]: the same lines, pretty or inside JSON log objects.
      const pub = /public\s+(ws:\/\/[^\s"]+)/.exec(text);
      const priv = /private\s+(?:tcp|tls):\/\/[^\s"]+:(\d+)/.exec(text);
      const admin = /admin\s+(http:\/\/[^\s"]+)/.exec(text);
      if (pub && priv) return { publicUrl: pub[1]!, privatePort: Number(priv[1]), adminUrl: admin?.[1] };
      if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${text}`);
      await Bun.sleep(10);
    }
  })();
  try {
    const addresses = await within(ready, "the server's startup log", 15_000);
    return {
      proc,
      ...addresses,
      output: () => text,
      async stop(signal = "SIGTERM") {
        proc.kill(signal);
        try {
          return await within(proc.exited, "the server to exit", 15_000);
        } finally {
          proc.kill("SIGKILL");
          running.delete(proc);
        }
      },
    };
  } catch (error) {
    proc.kill("SIGKILL");
    running.delete(proc);
    throw error;
  }
}
