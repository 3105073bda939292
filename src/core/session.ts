/** What a command may ask of the control connection it came from. */
export interface ControlSession {
  /** From now on this connection also receives events. Idempotent. */
  listen(): void;
}
