// The one table of settings: each drives its flag, its WEBTALK_* variable, its config-file keys,
// its default, its --help line and its row in docs/reference/configuration.md (npm run docs:config),
// under its group. Parsers throw a message naming what was expected.

import { parseAddress, type Address } from "./address.ts";
import { flag, oneOf, origins, seconds, wholeNumber } from "./parse.ts";
import { parseCidrs, type Cidr } from "./cidr.ts";

export type LogLevel = "silent" | "error" | "warn" | "info" | "debug";
export type Duplicate = "replace" | "reject";
export type DataSync = "full" | "normal";
export type LogFormat = "pretty" | "json";

export interface Config {
  public: Address;
  private: Address;
  path: string;
  queue: number;
  /** Seconds a browser has to send `ID!SALT`. */
  loginTimeout: number;
  /** Seconds between the comment lines that keep an idle Server-Sent Events stream open. */
  ssePing: number;
  duplicate: Duplicate;
  /** Browsers one user may have logged in at once; past it --duplicate decides which goes (4002). */
  sessions: number;
  upstream: boolean;
  maxMessage: number;
  maxMessageRate: number;
  listenerBuffer: number;
  /** Shared secret a control connection must present with `[auth]`; "" for none. */
  secret: string;
  /** PEM files; both set means TLS on the public port. */
  tlsCert: string;
  tlsKey: string;
  privateTls: boolean;
  /** Allowed `Origin` values for WebSocket upgrades; empty allows any. */
  origins: string[];
  maxConnections: number;
  maxControlConnections: number;
  /** Seconds a control connection has to authenticate when a secret is set. */
  authTimeout: number;
  /** Seconds a control frame may take to arrive whole once its first byte has. */
  frameTimeout: number;
  /** Bytes queued for one browser before it counts as a slow consumer and is closed with 4006. */
  backpressure: number;
  /** Bytes of held messages across all users; past it the oldest held messages are dropped. */
  queueBytes: number;
  /** Seconds a graceful shutdown may take. */
  shutdownTimeout: number;
  /** Replay window for webtalk.v2 browsers: messages per source, seconds, and bytes in total. */
  replayCount: number;
  replayAge: number;
  replayBytes: number;
  /** redis:// URL: state and fan-out shared by every node; "" for this process alone. */
  redis: string;
  redisPrefix: string;
  /** Start on a Redis whose maxmemory-policy may evict keys (or whose policy cannot be read). */
  redisAllowEviction: boolean;
  /** Seconds a dead node's users stay online before they may log in elsewhere. */
  lease: number;
  /** Serve the demo page at `/` and the demo-only user endpoint. */
  demo: boolean;
  logLevel: LogLevel;
  /** SQLite file holding users, channels, held messages and the store; "" keeps everything in memory. */
  data: string;
  /** When a write reaches the disk: before each `[ok]` (full), or at WAL checkpoints (normal). */
  dataSync: DataSync;
  logFormat: LogFormat;
  /** Where the probes (/livez, /readyz, /healthz) and /metrics are served, or "off". */
  admin: Address | "off";
  /** Seconds between SIGTERM (/readyz turns 503) and the public and control ports closing. */
  drainDelay: number;
  /** Proxies whose X-Forwarded-For names the browser's address; empty trusts none. */
  trustedProxies: Cidr[];
}

export type RawValue = string | number | boolean;

/** The sections of --help and of docs/reference/configuration.md, in the order they are shown. */
export const GROUPS = {
  network: "addresses, the WebSocket endpoint and how connections behave",
  limits: "sizes, rates and timeouts that keep one client from hurting the others",
  security: "authentication of backends, TLS and allowed origins",
  durability: "keeping state across restarts",
  cluster: "several nodes sharing one Redis",
  observability: "logs, health and metrics",
} as const;
export type Group = keyof typeof GROUPS;

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  /** The long flag, without dashes; the variable is WEBTALK_ + its upper-snake form. */
  flag: string;
  group: Group;
  /**
   * Keys accepted in the JSON config file, matched exactly: the first (the setting's key) is the one
   * documented; the rest are its `fileAliases`.
   */
  readonly fileKeys: readonly string[];
  /** Other names the file accepts for this key: the original Go webtalk's `Public` and `Private`. */
  fileAliases?: readonly string[];
  default: Config[K];
  valueHint: string;
  description: string;
  /** A switch: `--flag` alone means true. */
  boolean?: true;
  /** How --help and the reference show the default, when its value says nothing by itself (""). */
  shownDefault?: string;
  parse(raw: RawValue): Config[K];
}

export const settings: readonly Setting[] = [
  define({
    key: "public",
    flag: "public",
    group: "network",
    fileAliases: ["Public"],
    default: { host: "0.0.0.0", port: 12345 },
    valueHint: "HOST:PORT",
    description: "WebSocket address browsers connect to (port 0 picks a free port)",
    parse: (raw) => parseAddress(String(raw)),
  }),
  define({
    key: "private",
    flag: "private",
    group: "network",
    fileAliases: ["Private"],
    default: { host: "127.0.0.1", port: 12344 },
    valueHint: "HOST:PORT",
    description: "control address backends connect to; loopback by default, it has no authentication",
    parse: (raw) => parseAddress(String(raw)),
  }),
  define({
    key: "path",
    flag: "path",
    group: "network",
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
    group: "limits",
    default: 1000,
    valueHint: "COUNT",
    description: "messages held per offline user; past it the oldest is dropped",
    parse: (raw) => wholeNumber(raw, 0, 10_000_000),
  }),
  define({
    key: "loginTimeout",
    flag: "login-timeout",
    group: "network",
    default: 10,
    valueHint: "SECONDS",
    description: "seconds a browser has to log in before it is closed with 4003",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "ssePing",
    flag: "sse-ping",
    group: "network",
    default: 25,
    valueHint: "SECONDS",
    description: "seconds between the comment lines each Server-Sent Events stream ({path}/events) gets, so proxies keep a quiet one open",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "duplicate",
    flag: "duplicate",
    group: "network",
    default: "replace",
    valueHint: "replace|reject",
    description: "a login past a connected user's --sessions replaces the oldest browser, or is rejected",
    parse: (raw) => oneOf(raw, ["replace", "reject"] as const),
  }),
  define({
    key: "sessions",
    flag: "sessions",
    group: "limits",
    default: 1,
    valueHint: "COUNT",
    description: "browsers one user may have logged in at once (tabs, devices); presence still counts the user once",
    parse: (raw) => wholeNumber(raw, 1, 1000),
  }),
  define({
    key: "upstream",
    flag: "upstream",
    group: "network",
    default: false,
    valueHint: "",
    boolean: true,
    description: "forward text that logged-in browsers send to listening backends as [message] events",
    parse: (raw) => flag(raw),
  }),
  define({
    key: "maxMessage",
    flag: "max-message",
    group: "limits",
    default: 4096,
    valueHint: "BYTES",
    description: "largest message a browser may send; larger closes it with 1009",
    parse: (raw) => wholeNumber(raw, 256, 65_536),
  }),
  define({
    key: "maxMessageRate",
    flag: "max-message-rate",
    group: "limits",
    default: 100,
    valueHint: "N",
    description: "messages per second a logged-in browser may send (0: unlimited); past it the browser is closed with 1008",
    parse: (raw) => wholeNumber(raw, 0, 1_000_000),
  }),
  define({
    key: "listenerBuffer",
    flag: "listener-buffer",
    group: "limits",
    default: 8 << 20,
    valueHint: "BYTES",
    description: "memory (bytes, buffers and their per-buffer cost) a [listen] connection's unsent events may hold before it is disconnected",
    parse: (raw) => wholeNumber(raw, 1024, 1 << 30),
  }),
  define({
    key: "secret",
    flag: "secret",
    group: "security",
    default: "",
    valueHint: "SECRET",
    description: "control connections must first send [auth] SECRET (unset: none, and the control port should stay on loopback)",
    parse: (raw) => String(raw),
  }),
  define({
    key: "tlsCert",
    flag: "tls-cert",
    group: "security",
    default: "",
    valueHint: "FILE",
    description: "PEM certificate: with --tls-key, the public port serves wss:// and https://",
    parse: (raw) => String(raw),
  }),
  define({
    key: "tlsKey",
    flag: "tls-key",
    group: "security",
    default: "",
    valueHint: "FILE",
    description: "PEM private key for --tls-cert",
    parse: (raw) => String(raw),
  }),
  define({
    key: "privateTls",
    flag: "private-tls",
    group: "security",
    default: false,
    valueHint: "",
    boolean: true,
    description: "the control port uses TLS too, with the same certificate and key",
    parse: (raw) => flag(raw),
  }),
  define({
    key: "origins",
    flag: "origins",
    group: "security",
    default: [],
    valueHint: "ORIGIN,ORIGIN",
    description: "WebSocket upgrades and Server-Sent Events requests whose Origin is not listed get 403 (unset: any origin)",
    parse: (raw) => origins(raw),
  }),
  define({
    key: "maxConnections",
    flag: "max-connections",
    group: "limits",
    default: 100_000,
    valueHint: "COUNT",
    description: "browsers beyond this many are refused with 503",
    parse: (raw) => wholeNumber(raw, 1, 10_000_000),
  }),
  define({
    key: "maxControlConnections",
    flag: "max-control-connections",
    group: "limits",
    default: 1000,
    valueHint: "COUNT",
    description: "control connections beyond this many are refused",
    parse: (raw) => wholeNumber(raw, 1, 1_000_000),
  }),
  define({
    key: "authTimeout",
    flag: "auth-timeout",
    group: "security",
    default: 5,
    valueHint: "SECONDS",
    description: "with --secret, seconds a control connection has to send a good [auth] before it is closed",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "frameTimeout",
    flag: "frame-timeout",
    group: "limits",
    default: 30,
    valueHint: "SECONDS",
    description: "seconds a control frame may take to arrive whole once it has begun; past it the connection is closed",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "backpressure",
    flag: "backpressure",
    group: "limits",
    default: 4 << 20,
    valueHint: "BYTES",
    description: "bytes queued for a browser that is not reading before it is closed with 4006",
    parse: (raw) => wholeNumber(raw, 16 * 1024, 1 << 30),
  }),
  define({
    key: "queueBytes",
    flag: "queue-bytes",
    group: "limits",
    default: 64 << 20,
    valueHint: "BYTES",
    description: "memory for held messages across all users (2 bytes a character and ~100 a message); past it the oldest are dropped",
    parse: (raw) => wholeNumber(raw, 0, 2 ** 40),
  }),
  define({
    key: "shutdownTimeout",
    flag: "shutdown-timeout",
    group: "network",
    default: 10,
    valueHint: "SECONDS",
    description: "on SIGTERM/SIGINT, time allowed to answer pending commands and close connections",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "replayCount",
    flag: "replay-count",
    group: "limits",
    default: 1000,
    valueHint: "COUNT",
    description: "messages kept per channel and per user for webtalk.v2 browsers to resume from (0: none)",
    parse: (raw) => wholeNumber(raw, 0, 1_000_000),
  }),
  define({
    key: "replayAge",
    flag: "replay-age",
    group: "limits",
    default: 300,
    valueHint: "SECONDS",
    description: "how long a message stays in the replay window",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "replayBytes",
    flag: "replay-bytes",
    group: "limits",
    default: 64 << 20,
    valueHint: "BYTES",
    description: "memory for replay windows across all sources (2 bytes a character and ~100 a message); past it the oldest go first",
    parse: (raw) => wholeNumber(raw, 0, 2 ** 40),
  }),
  define({
    key: "redis",
    flag: "redis",
    group: "cluster",
    default: "",
    valueHint: "URL",
    description: "run as one node of a cluster: state and fan-out in Redis, e.g. redis://127.0.0.1:6379/0",
    parse: (raw) => {
      const url = String(raw);
      if (url !== "" && !/^(redis|rediss|valkey|valkeys):\/\/\S+$/.test(url)) throw new Error("expected a redis:// URL");
      return url;
    },
  }),
  define({
    key: "redisPrefix",
    flag: "redis-prefix",
    group: "cluster",
    default: "webtalk:",
    valueHint: "PREFIX",
    description: "namespace for every Redis key and channel, so deployments can share a Redis",
    parse: (raw) => {
      const prefix = String(raw);
      if (!/^[\x21-\x7e]{1,64}$/.test(prefix)) throw new Error("expected 1 to 64 printable characters without spaces");
      return prefix;
    },
  }),
  define({
    key: "redisAllowEviction",
    flag: "redis-allow-eviction",
    group: "cluster",
    default: false,
    valueHint: "",
    boolean: true,
    description:
      "with --redis: start even when Redis's maxmemory-policy is not noeviction (or cannot be read): evicted users and ID counters can send a message to the wrong browser",
    parse: (raw) => flag(raw),
  }),
  define({
    key: "lease",
    flag: "lease",
    group: "cluster",
    default: 15,
    valueHint: "SECONDS",
    description: "with --redis: how long a dead node's users stay online before they can log in on another node",
    parse: (raw) => seconds(raw),
  }),
  define({
    key: "demo",
    flag: "demo",
    group: "network",
    default: false,
    valueHint: "",
    boolean: true,
    description: "serve a live demo page at / whose demo-only endpoint creates users for anyone: to try webtalk, never in production",
    parse: (raw) => flag(raw),
  }),
  define({
    key: "logLevel",
    flag: "log-level",
    group: "observability",
    default: "info",
    valueHint: "silent|error|warn|info|debug",
    description: "how much to log",
    parse: (raw) => oneOf(raw, ["silent", "error", "warn", "info", "debug"] as const),
  }),
  define({
    key: "data",
    flag: "data",
    group: "durability",
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
    group: "durability",
    default: "full",
    valueHint: "full|normal",
    description: "with --data: full = on disk before each [ok] (survives power loss); normal = survives a crash of webtalk, faster",
    parse: (raw) => oneOf(raw, ["full", "normal"] as const),
  }),
  define({
    key: "logFormat",
    flag: "log-format",
    group: "observability",
    default: "pretty",
    valueHint: "pretty|json",
    description: "log lines for people, or one JSON object per line for log shippers",
    parse: (raw) => oneOf(raw, ["pretty", "json"] as const),
  }),
  define({
    key: "admin",
    flag: "admin",
    group: "observability",
    default: { host: "127.0.0.1", port: 12346 },
    valueHint: "HOST:PORT|off",
    description: "HTTP address of the probes (/livez, /readyz) and /metrics, kept off the public port; off disables it",
    parse: (raw) => (raw === false || String(raw) === "off" ? "off" : parseAddress(String(raw))),
  }),
  define({
    key: "drainDelay",
    flag: "drain-delay",
    group: "network",
    default: 0,
    valueHint: "SECONDS",
    description: "on SIGTERM/SIGINT, seconds /readyz answers 503 before the ports close, so a load balancer stops sending first",
    parse: (raw) => wholeNumber(raw, 0, 3600),
  }),
  define({
    key: "trustedProxies",
    flag: "trusted-proxies",
    group: "security",
    default: [],
    valueHint: "CIDR,CIDR",
    description: "reverse proxies (e.g. 127.0.0.1,10.0.0.0/8) whose X-Forwarded-For gives a browser's address in logs",
    parse: (raw) => parseCidrs(String(raw)),
  }),
];

/** `--config FILE` is not a setting of the server itself: it says where the others come from. */
export const CONFIG_FLAG = "config";
export const DEFAULT_CONFIG_FILE = "webtalk.ini";

/**
 * WEBTALK_* variables that are not the server's settings but are not typos either: `webtalk ctl`'s
 * own, and the test suite's, which often share an environment with a server.
 */
export const OTHER_VARIABLES: Readonly<Record<string, string>> = {
  WEBTALK_TLS_CA: "webtalk ctl: the certificate to trust",
  WEBTALK_TEST_REDIS: "the test suite: a Redis to run against",
  WEBTALK_ATTACK: "the test suite: attack sizes",
  WEBTALK_COMMIT: "npm run build (and deploy/Dockerfile's build argument): the commit --version names",
};

export function envName(flag: string): string {
  return `WEBTALK_${flag.toUpperCase().replaceAll("-", "_")}`;
}

function define<K extends keyof Config>(setting: Omit<Setting<K>, "fileKeys">): Setting {
  const fileKeys = [setting.key, ...(setting.fileAliases ?? [])];
  return { ...setting, fileKeys } as unknown as Setting;
}
