/** What a command may ask of the control connection it came from. */
export interface ControlSession {
  /** From now on this connection also receives events. Idempotent. */
  listen(): void;
}

/** `[auth]` is the only command a connection may send first when a secret is set. */
export function isAuthCommand(payload: string): boolean {
  return payload === "[auth]" || payload.startsWith("[auth] ");
}
