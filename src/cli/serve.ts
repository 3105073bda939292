import { defineCommand, type ArgsDef } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { ConfigError, loadConfig } from "../config/load.ts";
import { readRawFlags } from "./boolean-flags.ts";
import { CONFIG_FLAG, envName, settings } from "../config/schema.ts";
import { createLog } from "../observe/log.ts";
import { startServer, StartupError, type Webtalk } from "../server.ts";
import { formatAddress, type Address } from "../config/address.ts";
import { StateOpenError } from "../state/state.ts";

/** `webtalk [flags]`: loads the configuration and runs the server until SIGINT or SIGTERM. */
export const serveCommand = defineCommand({
  meta: { name: "webtalk", version: pkg.version, description: pkg.description },
  args: serveArgs(),
  async run({ args, rawArgs }) {
    const unknown = unknownFlags(rawArgs);
    if (unknown.length > 0) return fail(2, `unknown flag ${unknown[0]} (see --help)`);
    const raw = readRawFlags(rawArgs, BOOLEAN_FLAGS);
    if (raw.strays.length > 0) return fail(2, `unexpected argument ${JSON.stringify(raw.strays[0])} (flags are --name VALUE; see --help)`);
    let loaded;
    try {
      loaded = loadConfig({ flags: { ...args, ...raw.booleans }, env: process.env, cwd: process.cwd() });
    } catch (error) {
      if (error instanceof ConfigError) return fail(2, error.message);
      throw error;
    }
    const log = createLog(loaded.config.logLevel, loaded.config.logFormat);
    for (const warning of loaded.warnings) log.warn(warning);
    if (loaded.file) log.info(`config file ${loaded.file}`);
    // Signals are caught from the start: one that arrives while the server starts stops it once started.
    let server: Webtalk | undefined;
    let requested: string | undefined;
    const stop = async (signal: string) => {
      if (!server) return void (requested = signal);
      log.info(`${signal}: shutting down`);
      try {
        await server.stop();
      } catch (error) {
        // The parts that could close have closed; a stop the operator asked for is still a stop.
        log.error(`while shutting down: ${(error as Error).message}`);
      }
      process.exit(0);
    };
    process.once("SIGINT", () => void stop("SIGINT"));
    process.once("SIGTERM", () => void stop("SIGTERM"));
    try {
      server = await startServer(loaded.config, log);
    } catch (error) {
      if (error instanceof ConfigError) return fail(2, error.message);
      if (error instanceof StartupError) return fail(1, error.message);
      if (error instanceof StateOpenError) return fail(2, error.message);
      throw error;
    }
    if (requested) await stop(requested);
  },
});

const BOOLEAN_FLAGS: ReadonlySet<string> = new Set(settings.filter((s) => s.boolean).map((s) => s.flag));

function serveArgs(): ArgsDef {
  const args: ArgsDef = {};
  for (const s of settings) {
    const shown = s.shownDefault ?? showDefault(s.default);
    const description = `${s.description} (env ${envName(s.flag)}, default ${shown})`;
    args[s.flag] = s.boolean
      ? { type: "boolean", description: `${description}; bare --${s.flag} is true, or give true|false|1|0|yes|no` }
      : { type: "string", valueHint: s.valueHint, description };
  }
  args[CONFIG_FLAG] = {
    type: "string",
    valueHint: "FILE",
    description: `JSON config file, e.g. {"Public": ":12345", "Private": "127.0.0.1:12344"} (env ${envName(CONFIG_FLAG)}, default ./webtalk.ini when present)`,
  };
  return args;
}

function showDefault(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? "none" : value.join(",");
  if (typeof value === "object" && value !== null) return formatAddress(value as Address);
  return value === "" ? "none" : String(value);
}

function unknownFlags(rawArgs: string[]): string[] {
  const known = new Set([...settings.map((s) => s.flag), CONFIG_FLAG]);
  return rawArgs.filter((arg) => /^-[^0-9]/.test(arg) && !known.has(arg.replace(/^--?/, "").split("=")[0]!));
}

function fail(code: number, message: string): never {
  process.stderr.write(`webtalk: ${message}\n`);
  process.exit(code);
}
