import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { didYouMean } from "../util/suggest.ts";
import { findDuplicateKey, findJsonError } from "./json-error.ts";
import { CONFIG_FLAG, DEFAULT_CONFIG_FILE, envName, OTHER_VARIABLES, settings, type Config, type RawValue, type Setting } from "./schema.ts";

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
  /** Things worth a warning that do not stop the server (WEBTALK_* variables that are no setting). */
  warnings: string[];
  /** The config file read, if any. */
  file?: string;
}

/** Resolves every setting: flag, then WEBTALK_* variable, then config file, then default. */
export function loadConfig({ flags, env, cwd }: ConfigSources): LoadedConfig {
  const warnings = unknownVariables(env);
  const file = configFile(flags, env, cwd);
  const shown = file === undefined ? undefined : shownPath(file, cwd);
  const fileValues = file === undefined ? {} : readConfigFile(file, shown!);
  const config: Record<string, unknown> = {};
  for (const setting of settings) {
    config[setting.key] = resolveSetting(setting, flags, env, fileValues, shown);
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
  // The error names where the value came from, as every other setting's does.
  const where = flags[CONFIG_FLAG] !== undefined ? `--${CONFIG_FLAG}` : envName(CONFIG_FLAG);
  if (typeof named === "string" && named !== "") {
    const path = resolve(cwd, named);
    if (!existsSync(path)) throw new ConfigError(`invalid ${where} value ${JSON.stringify(named)}: no such file`);
    return path;
  }
  if (named !== undefined && named !== "") throw new ConfigError(`invalid ${where} value: expected a file name`);
  const implicit = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(implicit) ? implicit : undefined;
}

/** The file as the operator would name it: relative to the working directory when inside it. */
function shownPath(path: string, cwd: string): string {
  const inside = relative(cwd, path);
  return inside.startsWith("..") || isAbsolute(inside) ? path : inside;
}

function readConfigFile(path: string, shown: string): Record<string, unknown> {
  // Windows editors may start the file with a byte-order mark: not JSON, but not worth an exit 2.
  let text: string;
  try {
    text = readFileSync(path, "utf8").replace(/^\uFEFF/, "");
  } catch (error) {
    // A directory (a Docker bind mount of a path missing on the host) or a file webtalk may not read.
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "EISDIR" ? "it is a directory" : code === "EACCES" ? "permission denied" : (code ?? (error as Error).message);
    throw new ConfigError(`cannot read config file ${shown}: ${why}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const at = findJsonError(text);
    const hint = /^\s*[{[]/.test(text) ? "" : ` (${DEFAULT_CONFIG_FILE} holds JSON, e.g. {"public": ":12345"})`;
    if (at) throw new ConfigError(`${shown}:${at.line}:${at.column}: ${at.message}${hint}`);
    throw new ConfigError(`invalid config file ${shown}: ${(error as Error).message}`);
  }
  // JSON.parse took it; the scanner still refuses a key given twice, which JSON.parse resolves silently.
  const repeated = findJsonError(text);
  if (repeated) throw new ConfigError(`${shown}:${repeated.line}:${repeated.column}: ${repeated.message}`);
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`invalid config file ${shown}: expected a JSON object such as {"public": ":12345"}`);
  }
  checkKeys(Object.keys(parsed), shown);
  const twice = findDuplicateKey(text);
  if (twice) throw new ConfigError(`${shown}:${twice.line}:${twice.column}: ${twice.message}: keep one`);
  return parsed as Record<string, unknown>;
}

/**
 * Keys are matched exactly: `Queue` is not `queue`, and a key that means nothing is a mistake the
 * operator wants to hear about before the server runs without it. Documented aliases are fine alone.
 */
function checkKeys(keys: string[], shown: string): void {
  const known = settings.flatMap((s) => s.fileKeys);
  for (const key of keys) {
    if (!known.includes(key)) {
      throw new ConfigError(`unknown key "${key}" in ${shown}${didYouMean(key, known, (k) => `"${k}"`)}`);
    }
  }
  for (const setting of settings) {
    const given = setting.fileKeys.filter((key) => keys.includes(key));
    if (given.length > 1) throw new ConfigError(`${given.map((k) => `"${k}"`).join(" and ")} in ${shown} are the same setting: keep one`);
  }
}

/** A mistyped variable is ignored by everything else: say so, with the name probably meant. */
export function unknownVariables(env: Record<string, string | undefined>): string[] {
  const known = [...settings.map((s) => envName(s.flag)), envName(CONFIG_FLAG)];
  const others = Object.keys(OTHER_VARIABLES);
  return Object.keys(env)
    .filter((name) => name.startsWith("WEBTALK_") && !known.includes(name) && !others.includes(name))
    .sort()
    .map((name) => `unknown variable ${name} (ignored)${didYouMean(name, known)}`);
}
