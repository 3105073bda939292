// Every close code and fixed reply text in one table; the README's tables mirror this file.

/** WebSocket close codes sent to browsers. `final` ones mean "do not reconnect with the same credentials". */
export const CloseCode = {
  loginFailed: { code: 4001, reason: "login failed", final: true },
  replaced: { code: 4002, reason: "replaced by another login", final: true },
  // With --sessions above 1: the same code, and a reason that names the limit, so a page can tell
  // "another tab took my place" from "my user logged in elsewhere" (`/webtalk.js`: CloseInfo.sessionLimit).
  sessionReplaced: { code: 4002, reason: "session limit: replaced by a newer login", final: true },
  sessionRefused: { code: 4002, reason: "session limit: too many sessions", final: true },
  loginTimeout: { code: 4003, reason: "login timeout", final: false },
  killed: { code: 4004, reason: "user killed", final: true },
  kicked: { code: 4005, reason: "kicked", final: true },
  slowConsumer: { code: 4006, reason: "slow consumer", final: false },
  tooFast: { code: 1008, reason: "message rate exceeded", final: false },
  tooLarge: { code: 1009, reason: "message too large", final: false },
  shuttingDown: { code: 1001, reason: "server shutting down", final: false },
  tryAgainLater: { code: 1013, reason: "backend unavailable", final: false },
  resumeTooOften: { code: 1013, reason: "resuming too often: try again later", final: false },
} as const;

export type CloseReason = (typeof CloseCode)[keyof typeof CloseCode];

/** Fixed `[ok]` texts, kept word for word from the original (including "user leaved"). */
export const Reply = {
  goodbye: "goodbye",
  userKilled: "user killed",
  messageSent: "message sent",
  messageQueued: "message queued",
  channelKilled: "channel killed",
  userJoined: "user joined",
  userLeft: "user leaved",
  userKicked: "user kicked",
  pong: "pong",
  listening: "listening",
  authenticated: "authenticated",
} as const;

/** Unsolicited frames sent to listening control connections; never `[ok]` or `[error]`, so never a reply. */
export const Event = {
  online: (user: number) => `[online] ${user}`,
  offline: (user: number) => `[offline] ${user}`,
  message: (user: number, text: string) => `[message] ${user}!${text}`,
  gap: (user: number, source: string) => `[gap] ${user}!${source}`,
} as const;

export function okReply(data: string): string {
  return `[ok] ${data}`;
}

export function errorReply(message: string): string {
  return `[error] ${message}`;
}
