// Where and how `webtalk ctl` connects: the connection flags every subcommand takes, resolved
// flag first, then the server's own WEBTALK_* variables, then the defaults.

import { readFileSync } from "node:fs";
import type { ArgsDef } from "citty";
import { parseAddress, type Address } from "../config/address.ts";
import { flag } from "../config/parse.ts";
import type { CtlTls } from "./ctl-connection.ts";

/** A mistake on the command line: ctl prints it and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Flags every subcommand takes, before or after its name. */
export const connectionArgs = {
  private: {
    type: "string",
    valueHint: "HOST:PORT",
    description: "webtalk's control address (env WEBTALK_PRIVATE, default 127.0.0.1:12344)",
  },
  secret: {
    type: "string",
    valueHint: "SECRET",
    description: "sent as [auth] SECRET before anything else (env WEBTALK_SECRET, which ps cannot show)",
  },
  timeout: { type: "string", valueHint: "SECONDS", description: "wait this long to connect and for each reply (default 10)" },
  tls: { type: "boolean", description: "connect with TLS, to a server run with --private-tls (env WEBTALK_PRIVATE_TLS)" },
  "tls-ca": {
    type: "string",
    valueHint: "FILE",
    description: "PEM certificate(s) to trust instead of the system's, e.g. a self-signed server's --tls-cert (env WEBTALK_TLS_CA)",
  },
  "tls-name": { type: "string", valueHint: "NAME", description: "the name the server's certificate must carry (default the host)" },
} as const satisfies ArgsDef;

const VALUE_FLAGS = ["private", "secret", "timeout", "tls-ca", "tls-name"] as const;

export type ConnectionFlags = { [K in (typeof VALUE_FLAGS)[number]]?: string } & { tls?: boolean };

export interface Target {
  address: Address;
  secret: string | undefined;
  timeoutMs: number;
  tls: CtlTls | undefined;
}

/** The connection flags among a command's parsed arguments. */
export function connectionFlags(args: Record<string, unknown>): ConnectionFlags {
  const flags: ConnectionFlags = {};
  for (const key of VALUE_FLAGS) if (typeof args[key] === "string") flags[key] = args[key];
  if (typeof args.tls === "boolean") flags.tls = args.tls;
  return flags;
}

/** Flag, else variable, else default; a bad value is a UsageError naming the flag. */
export function resolveTarget(flags: ConnectionFlags, env: NodeJS.ProcessEnv): Target {
  const text = flags.private ?? (env.WEBTALK_PRIVATE || "127.0.0.1:12344");
  let address: Address;
  try {
    address = parseAddress(text);
  } catch (error) {
    throw new UsageError(`invalid --private value ${JSON.stringify(text)}: ${(error as Error).message}`);
  }
  // A server listening on all interfaces (":12344" in webtalk.ini) is reached on loopback.
  if (address.host === "0.0.0.0") address = { ...address, host: "127.0.0.1" };
  if (address.host === "::") address = { ...address, host: "::1" };
  const seconds = Number(flags.timeout ?? 10);
  if (!(seconds > 0 && seconds <= 3600)) throw new UsageError(`invalid --timeout value ${JSON.stringify(flags.timeout)}: expected seconds`);
  if (flags.secret === "") throw new UsageError("--secret needs a value: --secret SECRET (or WEBTALK_SECRET, which ps cannot show)");
  const secret = flags.secret ?? (env.WEBTALK_SECRET || undefined);
  const useTls = flags.tls ?? envSwitch(env, "WEBTALK_PRIVATE_TLS");
  const caFile = flags["tls-ca"] ?? (env.WEBTALK_TLS_CA || undefined);
  const tls = useTls ? { ca: caFile === undefined ? undefined : readCa(caFile), serverName: flags["tls-name"] } : undefined;
  return { address, secret, timeoutMs: seconds * 1000, tls };
}

/** A switch from the environment, with the server's six words (the same variable serves both). */
function envSwitch(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return false;
  try {
    return flag(raw);
  } catch (error) {
    throw new UsageError(`invalid ${name} value ${JSON.stringify(raw)}: ${(error as Error).message}`);
  }
}

/**
 * `--tls` as written on the command line: alone true, `--tls=VALUE` one of the server's six words
 * (citty reads any value but "false" as true, so `--tls=no` would connect with TLS).
 */
export function tlsSwitch(rawArgs: string[]): boolean | undefined {
  let value: boolean | undefined;
  for (let i = 0; i < rawArgs.length && rawArgs[i] !== "--"; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--tls") value = true;
    else if (arg.startsWith("--tls=")) {
      const raw = arg.slice("--tls=".length);
      try {
        value = flag(raw);
      } catch (error) {
        throw new UsageError(`invalid --tls value ${JSON.stringify(raw)}: ${(error as Error).message}`);
      }
    } else if ((VALUE_FLAGS as readonly string[]).includes(arg.replace(/^--?/, ""))) i++; // its value
  }
  return value;
}

/**
 * Flags ctl does not know are refused, not ignored: a mistyped --private must not quietly reach the
 * default server, and a message that starts with - belongs after --.
 */
export function refuseUnknownFlags(rawArgs: string[]): void {
  for (let i = 0; i < rawArgs.length && rawArgs[i] !== "--"; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith("-")) continue;
    const name = arg.replace(/^--?/, "").split("=")[0]!;
    if (!Object.hasOwn(connectionArgs, name)) {
      throw new UsageError(`unknown flag ${arg} (a value that starts with - goes after --)`);
    }
    if (!arg.includes("=") && (VALUE_FLAGS as readonly string[]).includes(name)) i++; // its value
  }
}

function readCa(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`invalid --tls-ca value ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
}
