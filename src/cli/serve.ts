import { defineCommand, type ArgsDef } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { ConfigError, loadConfig } from "../config/load.ts";
import { argumentError } from "./argument-errors.ts";
import { readRawFlags } from "./raw-flags.ts";
import { helpStyle, renderHelp } from "./help.ts";
import { versionLine } from "./version.ts";
import { CONFIG_FLAG, settings } from "../config/schema.ts";
import { createLog } from "../observe/log.ts";
import { startServer, StartupError, type Webtalk } from "../server.ts";
import { StateOpenError } from "../state/state.ts";

/** `webtalk [flags]`: loads the configuration and runs the server until SIGINT or SIGTERM. */
export const serveCommand = defineCommand({
  meta: { name: "webtalk", version: pkg.version, description: pkg.description },
  args: serveArgs(),
  async run({ args, rawArgs }) {
    // --help and --version take no value: `--version=1` is a mistake to name, not a server on defaults.
    const valued = rawArgs.find((arg) => /^(--help|-h|--version|-v)=/.test(arg));
    if (valued !== undefined) return fail(2, `${valued.split("=")[0]} takes no value: ${valued} (see --help)`);
    // Asked for anywhere on the line, as citty would: `webtalk --public x --help` still helps.
    if (rawArgs.some((arg) => arg === "--help" || arg === "-h")) return print(renderHelp(helpStyle(process.stdout, process.env)));
    if (rawArgs.some((arg) => arg === "--version" || arg === "-v")) return print(`${versionLine()}\n`);
    const raw = readRawFlags(rawArgs, FLAG_NAMES);
    const problem = argumentError(raw, [...FLAG_NAMES.known].filter((name) => name.length > 1));
    if (problem !== undefined) return fail(2, problem);
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
    let stopping = false;
    const stop = async (signal: string) => {
      if (!server) return void (requested = signal);
      // A repeated signal (docker stop twice, Ctrl-C twice) neither restarts the drain nor kills the
      // process mid-shutdown: the one under way ends within --drain-delay + --shutdown-timeout.
      if (stopping) return void log.info(`${signal}: already shutting down`);
      stopping = true;
      log.info(`${signal}: shutting down`);
      try {
        await server.stop();
      } catch (error) {
        // The parts that could close have closed; a stop the operator asked for is still a stop.
        log.error(`while shutting down: ${(error as Error).message}`);
      }
      process.exit(0);
    };
    process.on("SIGINT", () => void stop("SIGINT"));
    process.on("SIGTERM", () => void stop("SIGTERM"));
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

const FLAG_NAMES = {
  known: new Set([...settings.map((s) => s.flag), CONFIG_FLAG, "help", "h", "version", "v"]),
  booleans: new Set(settings.filter((s) => s.boolean).map((s) => s.flag)),
};

/**
 * What citty parses for us: the settings' values. Its own --help and --version are turned off by
 * declaring them (help.ts draws the help; version.ts prints more than the version).
 */
function serveArgs(): ArgsDef {
  const args: ArgsDef = {};
  for (const s of settings) args[s.flag] = s.boolean ? { type: "boolean" } : { type: "string", valueHint: s.valueHint };
  args[CONFIG_FLAG] = { type: "string", valueHint: "FILE" };
  args.help = { type: "boolean", alias: "h" };
  args.version = { type: "boolean", alias: "v" };
  return args;
}

function print(text: string): never {
  process.stdout.write(text);
  process.exit(0);
}

function fail(code: number, message: string): never {
  process.stderr.write(`webtalk: ${message}\n`);
  process.exit(code);
}
