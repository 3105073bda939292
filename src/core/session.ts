/** What a command may ask of the control connection it came from. */
export interface ControlSession {
  /**
   * From now on this connection also receives events, the first of them `first`, right after the
   * reply to the command that asked (a second call sends `first` again).
   */
  listen(first: string): void;
}

/** `[auth]` is the only command a connection may send first when a secret is set. */
export function isAuthCommand(payload: string): boolean {
  return payload === "[auth]" || payload.startsWith("[auth] ");
}
