import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CONFIG_FLAG, DEFAULT_CONFIG_FILE, envName, settings, type Config, type RawValue, type Setting } from "./schema.ts";

/** A bad setting: the message names the key, the bad value and where it came from. Exit code 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface ConfigSources {
  /** Parsed command-line flags by flag name; absent when not given. */
  flags: Record<string, unknown>;
  env: Record<string, string | undefined>;
  cwd: string;
}

export interface LoadedConfig {
  config: Readonly<Config>;
  /** Things worth a warning that do not stop the server (unknown file keys). */
  warnings: string[];
  /** The config file read, if any. */
  file?: string;
}

/** Resolves every setting: flag, then WEBTALK_* variable, then config file, then default. */
export function loadConfig({ flags, env, cwd }: ConfigSources): LoadedConfig {
  const warnings: string[] = [];
  const file = configFile(flags, env, cwd);
  const fileValues = file ? readConfigFile(file, warnings) : {};
  const config: Record<string, unknown> = {};
  for (const setting of settings) {
    config[setting.key] = resolveSetting(setting, flags, env, fileValues, file);
  }
  return { config: Object.freeze(config as unknown as Config), warnings, file };
}

function resolveSetting(
  setting: Setting,
  flags: Record<string, unknown>,
  env: Record<string, string | undefined>,
  fileValues: Record<string, unknown>,
  file: string | undefined,
): unknown {
  const flag = flags[setting.flag];
  if (flag !== undefined) return parse(setting, flag, `--${setting.flag}`);
  const variable = env[envName(setting.flag)];
  if (variable !== undefined && variable !== "") return parse(setting, variable, envName(setting.flag));
  for (const key of setting.fileKeys) {
    if (key in fileValues) return parse(setting, fileValues[key], `"${key}" in ${file}`);
  }
  return setting.default;
}

function parse(setting: Setting, raw: unknown, where: string): unknown {
  if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean") {
    throw new ConfigError(`invalid ${where}: ${JSON.stringify(raw)} is not a string or number`);
  }
  try {
    return setting.parse(raw as RawValue);
  } catch (error) {
    throw new ConfigError(`invalid ${where} value ${JSON.stringify(raw)}: ${(error as Error).message}`);
  }
}

function configFile(flags: Record<string, unknown>, env: Record<string, string | undefined>, cwd: string) {
  const named = flags[CONFIG_FLAG] ?? env[envName(CONFIG_FLAG)];
  if (typeof named === "string" && named !== "") {
    const path = resolve(cwd, named);
    if (!existsSync(path)) throw new ConfigError(`invalid --config value ${JSON.stringify(named)}: no such file`);
    return path;
  }
  if (named !== undefined && named !== "") throw new ConfigError(`invalid --config value: expected a file name`);
  const implicit = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(implicit) ? implicit : undefined;
}

function readConfigFile(path: string, warnings: string[]): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError(`invalid config file ${path}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`invalid config file ${path}: expected a JSON object such as {"Public": ":12345"}`);
  }
  const known = new Set(settings.flatMap((s) => s.fileKeys));
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) warnings.push(`unknown key "${key}" in ${path} (ignored)`);
  }
  return parsed as Record<string, unknown>;
}
