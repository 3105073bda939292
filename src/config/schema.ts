// The one table of settings: each drives its flag, its WEBTALK_* variable, its config-file keys,
// its default and its --help line. Parsers throw a message naming what was expected.

import { parseAddress, type Address } from "./address.ts";

export type LogLevel = "silent" | "error" | "warn" | "info" | "debug";
export type Duplicate = "replace" | "reject";
export type DataSync = "full" | "normal";

export interface Config {
  public: Address;
  private: Address;
  path: string;
  queue: number;
  /** Seconds a browser has to send `ID!SALT`. */
  loginTimeout: number;
  duplicate: Duplicate;
  logLevel: LogLevel;
  /** SQLite file holding users, channels, held messages and the store; "" keeps everything in memory. */
  data: string;
  /** When a write reaches the disk: before each `[ok]` (full), or at WAL checkpoints (normal). */
  dataSync: DataSync;
}

export type RawValue = string | number | boolean;

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  /** The long flag, without dashes; the variable is WEBTALK_ + its upper-snake form. */
  flag: string;
  /** Keys accepted in the JSON config file (the original's `Public`/`Private` first). */
  fileKeys: string[];
  default: Config[K];
  valueHint: string;
  description: string;
  /** How --help shows the default, when its value says nothing by itself (an empty string). */
  shownDefault?: string;
  parse(raw: RawValue): Config[K];
}

export const settings: readonly Setting[] = [
  define({
    key: "public",
    flag: "public",
    fileKeys: ["Public", "public"],
    default: { host: "0.0.0.0", port: 12345 },
    valueHint: "HOST:PORT",
    description: "WebSocket address browsers connect to (port 0 picks a free port)",
    parse: (raw) => parseAddress(String(raw)),
  }),
  define({
    key: "private",
    flag: "private",
    fileKeys: ["Private", "private"],
    default: { host: "127.0.0.1", port: 12344 },
    valueHint: "HOST:PORT",
    description: "control address backends connect to; loopback by default, it has no authentication",
    parse: (raw) => parseAddress(String(raw)),
  }),
  define({
    key: "path",
    flag: "path",
    fileKeys: ["Path", "path"],
    default: "/webtalk",
    valueHint: "PATH",
    description: "URL path of the WebSocket endpoint",
    parse: (raw) => {
      const path = String(raw);
      if (!/^\/[\x21-\x7e]*$/.test(path)) throw new Error("expected a URL path starting with /");
      return path;
    },
  }),
  define({
    key: "queue",
    flag: "queue",
    fileKeys: ["Queue", "queue"],
    default: 1000,
    valueHint: "COUNT",
    description: "messages held per offline user; past it the oldest is dropped",
    parse: (raw) => wholeNumber(raw, 0, 10_000_000),
  }),
  define({
    key: "loginTimeout",
    flag: "login-timeout",
    fileKeys: ["LoginTimeout", "loginTimeout"],
    default: 10,
    valueHint: "SECONDS",
    description: "seconds a browser has to log in before it is closed with 4003",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "duplicate",
    flag: "duplicate",
    fileKeys: ["Duplicate", "duplicate"],
    default: "replace",
    valueHint: "replace|reject",
    description: "a second login for a connected user replaces the first, or is rejected",
    parse: (raw) => oneOf(raw, ["replace", "reject"] as const),
  }),
  define({
    key: "logLevel",
    flag: "log-level",
    fileKeys: ["LogLevel", "logLevel"],
    default: "info",
    valueHint: "silent|error|warn|info|debug",
    description: "how much to log",
    parse: (raw) => oneOf(raw, ["silent", "error", "warn", "info", "debug"] as const),
  }),
  define({
    key: "data",
    flag: "data",
    fileKeys: ["Data", "data"],
    default: "",
    shownDefault: "none: in memory, empty at each start",
    valueHint: "FILE",
    description: "SQLite file that keeps users, channels, held messages and the store across restarts",
    parse: (raw) => {
      const path = String(raw);
      if (path.trim() === "" || path.includes("\0")) throw new Error("expected a file name");
      // SQLite would take these as a database in memory: durable in name only.
      if (path === ":memory:" || path.startsWith("file:")) throw new Error("expected a file name, not a SQLite URI");
      return path;
    },
  }),
  define({
    key: "dataSync",
    flag: "data-sync",
    fileKeys: ["DataSync", "dataSync"],
    default: "full",
    valueHint: "full|normal",
    description: "with --data: full = on disk before each [ok] (survives power loss); normal = survives a crash of webtalk, faster",
    parse: (raw) => oneOf(raw, ["full", "normal"] as const),
  }),
];

/** `--config FILE` is not a setting of the server itself: it says where the others come from. */
export const CONFIG_FLAG = "config";
export const DEFAULT_CONFIG_FILE = "webtalk.ini";

export function envName(flag: string): string {
  return `WEBTALK_${flag.toUpperCase().replaceAll("-", "_")}`;
}

function define<K extends keyof Config>(setting: Setting<K>): Setting {
  return setting as unknown as Setting;
}

function wholeNumber(raw: RawValue, min: number, max: number): number {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text)) throw new Error(`expected a whole number from ${min} to ${max}`);
  const value = Number(text);
  if (value < min || value > max) throw new Error(`expected a whole number from ${min} to ${max}`);
  return value;
}

function seconds(raw: RawValue): number {
  const text = String(raw).trim();
  const value = Number(text);
  if (text === "" || !Number.isFinite(value) || value <= 0 || value > 86_400) {
    throw new Error("expected seconds, a number above 0 and at most 86400");
  }
  return value;
}

function oneOf<T extends string>(raw: RawValue, options: readonly T[]): T {
  const text = String(raw);
  if (!(options as readonly string[]).includes(text)) throw new Error(`expected one of ${options.join(", ")}`);
  return text as T;
}
