import { inspect } from "node:util";
import { createConsola, LogLevels, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola";
import type { LogFormat, LogLevel } from "../config/schema.ts";

/**
 * The process's logger; subsystems take `log.withTag(name)`. Salts and secrets are never logged.
 * `json` writes one object per line for log shippers; plain-object arguments become its fields.
 */
export function createLog(level: LogLevel, format: LogFormat = "pretty"): ConsolaInstance {
  if (format === "json") {
    // No throttling: consola folds repeated identical lines into one, which a log shipper must not see.
    return createConsola({ level: LogLevels[level], reporters: [jsonReporter], throttle: 0 });
  }
  return createConsola({ level: LogLevels[level], reporters: [prettyReporter] });
}

/**
 * `2026-01-02T03:04:05.678Z INFO [public] login refused user=7 reason=wrong-salt addr=203.0.113.9`:
 * a UTC timestamp on every line (consola's own reporters print none when stdout is not a terminal,
 * which is every deployment), then the words, then the fields of object arguments as key=value.
 */
const prettyReporter: ConsolaReporter = {
  log(logObj, { options }) {
    const stream = logObj.level < 2 ? (options.stderr ?? process.stderr) : (options.stdout ?? process.stdout);
    stream.write(`${formatPrettyLine(logObj)}\n`);
  },
};

export function formatPrettyLine(logObj: Pick<LogObject, "date" | "level" | "type" | "tag" | "args">): string {
  const { words, fields, error } = splitArgs(logObj.args);
  const tag = logObj.tag ? ` [${logObj.tag}]` : "";
  const pairs = Object.entries(fields).filter(([, value]) => value !== undefined).map(([key, value]) => ` ${key}=${typeof value === "string" ? value : inspect(value, { breakLength: Infinity })}`);
  const stack = error ? `\n${error.stack ?? `${error.name}: ${error.message}`}` : "";
  return `${logObj.date.toISOString()} ${levelName(logObj.level, logObj.type).toUpperCase()}${tag} ${words.join(" ")}${pairs.join("")}${stack}`;
}

/** Errors and warnings go to stderr and the rest to stdout, as in consola's own reporters. */
const jsonReporter: ConsolaReporter = {
  log(logObj, { options }) {
    const stream = logObj.level < 2 ? (options.stderr ?? process.stderr) : (options.stdout ?? process.stdout);
    stream.write(`${formatJsonLine(logObj)}\n`);
  },
};

/**
 * `{"time":…,"level":…,"tag":…,"msg":…, …fields}`: strings (and anything else that is not a
 * plain object) are joined into the message; plain objects are merged in as fields; an Error
 * becomes the field `error` with its message and stack. Fields never replace the four keys.
 */
export function formatJsonLine(logObj: Pick<LogObject, "date" | "level" | "type" | "tag" | "args">): string {
  const { words, fields, error } = splitArgs(logObj.args);
  if (error) fields.error = { name: error.name, message: error.message, stack: error.stack };
  const line: Record<string, unknown> = {
    time: logObj.date.toISOString(),
    level: levelName(logObj.level, logObj.type),
    ...(logObj.tag ? { tag: logObj.tag } : {}),
    msg: words.join(" "),
  };
  for (const [key, value] of Object.entries(fields)) if (!(key in line)) line[key] = jsonable(value);
  return JSON.stringify(line);
}

/** A call's arguments as message words, fields (its plain objects) and the Error it carries, if any. */
function splitArgs(args: unknown[]): { words: string[]; fields: Record<string, unknown>; error: Error | undefined } {
  const words: string[] = [];
  const fields: Record<string, unknown> = {};
  let error: Error | undefined;
  for (const arg of args) {
    if (arg instanceof Error) error = arg;
    else if (isPlainObject(arg)) Object.assign(fields, arg);
    else words.push(typeof arg === "string" ? arg : inspect(arg, { breakLength: Infinity }));
  }
  return { words, fields, error };
}

/** The value itself, or its description when JSON cannot hold it (a BigInt, a cycle). */
function jsonable(value: unknown): unknown {
  try {
    JSON.stringify(value);
    return value;
  } catch {
    return inspect(value, { breakLength: Infinity });
  }
}

function levelName(level: number, type: string): string {
  if (level <= 0) return type === "fatal" ? "fatal" : "error";
  if (level === 1) return "warn";
  if (level <= 3) return "info";
  return level === 4 ? "debug" : "trace";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Whether debug lines are written: hot paths test it once, so no line is built just to be dropped. */
export function debugEnabled(log: ConsolaInstance): boolean {
  return log.level >= LogLevels.debug;
}
