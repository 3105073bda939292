// Types for webtalk's browser client (/webtalk.js as an ES module; /webtalk.global.js defines `webtalk`).

/** Close codes after which the same ID!SALT cannot log in again: 4001 login failed, 4002 replaced, 4004 killed, 4005 kicked. */
export declare const FINAL_CODES: readonly number[];

export interface CloseInfo {
  /** The close code: webtalk's 4001…4006, 1001 (server stopping), 1006 (network lost, or an SSE stream broken or refused), … */
  code: number;
  reason: string;
  /** True when the client will not reconnect: a final code, or `close()` was called. */
  final: boolean;
  /** Milliseconds until the next attempt, when not final. */
  reconnectIn?: number;
  /**
   * True for a 4002 caused by the server's `--sessions` limit: another tab or device of this user took
   * this one's place (reason "session limit: replaced by a newer login"), or this one found the user's
   * tabs all in use (reason "session limit: too many sessions"). Absent for a 4002 with `--sessions 1`
   * (reason "replaced by another login") and for every other close.
   */
  sessionLimit?: true;
}

/** Where a message came from, with webtalk.v2: "u" for whispers to this user, else the channel ID. */
export interface MessageMeta {
  source: string;
  /** Increases by exactly one per message in the source; any other step is reported to onGap first. */
  offset: number;
}

/** What a v2 connection resumes from: the server's epoch and the last offset seen per source. */
export interface ResumePoint {
  epoch: string;
  positions: Record<string, number>;
}

export interface ConnectOptions {
  /** Each whisper or shout, as the text the backend sent, once; `meta` is there with webtalk.v2. */
  onMessage?: (text: string, meta: MessageMeta | undefined) => void;
  /**
   * webtalk.v2 only: messages of `source` ("u" or a channel ID) were lost beyond recovery (the replay
   * window no longer reaches back, or the server restarted), or one arrived with an offset that is not
   * the last one plus one: reload that data from your backend. A repeated or late offset (not above the
   * last) is reported and not passed to onMessage; one that skips ahead (as after leaving a channel and
   * joining it again) is reported, then passed on.
   */
  onGap?: (source: string) => void;
  /** The socket opened and the login was sent (webtalk answers a good login with silence). */
  onOpen?: () => void;
  /** The socket closed; `final` says whether it will reconnect. */
  onClose?: (info: CloseInfo) => void;
  /** First reconnection delay ceiling in ms (default 500); it doubles per failed attempt. */
  minDelay?: number;
  /** Cap on the delay ceiling in ms (default 30000). Each delay is random below the ceiling. */
  maxDelay?: number;
  /** A connection open this long (ms, default 5000), or that received a message, resets the backoff. */
  stableAfter?: number;
  /** "v2" (default): ask for webtalk.v2, falling back to v1 when the server does not offer it. "v1": never ask. */
  protocol?: "v1" | "v2";
  /** Resume from here on the first login (what `connection.resume` said before a page reload). */
  resume?: ResumePoint;
  /**
   * "auto" (default): WebSocket, falling back to Server-Sent Events (`{url}/events`) when the upgrade
   * fails or no message arrives within `fallbackAfter`; attempts alternate until one brings a message,
   * then that transport is kept. "websocket" or "sse": only that one. SSE needs webtalk.v2 and the
   * browser's EventSource: without either, every mode is "websocket".
   */
  transport?: "auto" | "websocket" | "sse";
  /** With "auto": ms a WebSocket may stay silent after the login before it counts as blocked (default 3000). */
  fallbackAfter?: number;
}

export interface Connection {
  readonly state: "connecting" | "open" | "waiting" | "closed";
  /** "webtalk.v2" when the server numbers messages, "" for the original plain protocol. */
  readonly protocol: string;
  /** The transport of the current (or next) attempt. */
  readonly transport: "websocket" | "sse";
  /** Where a v2 connection would resume; undefined before the first login or with v1. */
  readonly resume: ResumePoint | undefined;
  readonly closeCode: number | undefined;
  readonly closeReason: string;
  /** Closes the connection and stops reconnecting. */
  close(): void;
}

/** Connects to `url` (ws:, wss:, http:, https: or a path on this page's host) and logs in as "ID!SALT". */
export declare function connect(url: string, token: string, options?: ConnectOptions): Connection;
