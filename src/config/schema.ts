// The one table of settings: each drives its flag, its WEBTALK_* variable, its config-file keys,
// its default and its --help line. Parsers throw a message naming what was expected.

import { parseAddress, type Address } from "./address.ts";

export type LogLevel = "silent" | "error" | "warn" | "info" | "debug";
export type Duplicate = "replace" | "reject";
export type LogFormat = "pretty" | "json";

export interface Config {
  public: Address;
  private: Address;
  path: string;
  queue: number;
  /** Seconds a browser has to send `ID!SALT`. */
  loginTimeout: number;
  duplicate: Duplicate;
  upstream: boolean;
  maxMessage: number;
  listenerBuffer: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Where /healthz and /metrics are served, or "off". */
  admin: Address | "off";
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
  /** A switch: `--flag` alone means true. */
  boolean?: true;
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
    key: "upstream",
    flag: "upstream",
    fileKeys: ["Upstream", "upstream"],
    default: false,
    valueHint: "",
    boolean: true,
    description: "forward text that logged-in browsers send to listening backends as [message] events",
    parse: (raw) => flag(raw),
  }),
  define({
    key: "maxMessage",
    flag: "max-message",
    fileKeys: ["MaxMessage", "maxMessage"],
    default: 4096,
    valueHint: "BYTES",
    description: "largest message a browser may send; larger closes it with 1009",
    parse: (raw) => wholeNumber(raw, 256, 65_536),
  }),
  define({
    key: "listenerBuffer",
    flag: "listener-buffer",
    fileKeys: ["ListenerBuffer", "listenerBuffer"],
    default: 8 << 20,
    valueHint: "BYTES",
    description: "unsent event bytes a [listen] connection may accumulate before it is disconnected",
    parse: (raw) => wholeNumber(raw, 1024, 1 << 30),
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
    key: "logFormat",
    flag: "log-format",
    fileKeys: ["LogFormat", "logFormat"],
    default: "pretty",
    valueHint: "pretty|json",
    description: "log lines for people, or one JSON object per line for log shippers",
    parse: (raw) => oneOf(raw, ["pretty", "json"] as const),
  }),
  define({
    key: "admin",
    flag: "admin",
    fileKeys: ["Admin", "admin"],
    default: { host: "127.0.0.1", port: 12346 },
    valueHint: "HOST:PORT|off",
    description: "HTTP address of /healthz and /metrics, kept off the public port; off disables it",
    parse: (raw) => (raw === false || String(raw) === "off" ? "off" : parseAddress(String(raw))),
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

function flag(raw: RawValue): boolean {
  if (raw === true || raw === false) return raw;
  const text = String(raw).toLowerCase();
  if (["1", "true", "yes", "on"].includes(text)) return true;
  if (["0", "false", "no", "off"].includes(text)) return false;
  throw new Error("expected true or false");
}

function oneOf<T extends string>(raw: RawValue, options: readonly T[]): T {
  const text = String(raw);
  if (!(options as readonly string[]).includes(text)) throw new Error(`expected one of ${options.join(", ")}`);
  return text as T;
}
