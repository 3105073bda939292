/**
 * A login past the user's --sessions under `--duplicate reject`, found where the limit is counted (a
 * cluster's claim, src/cluster/session-limit.ts): the browser is refused with 4002, not "try again later".
 */
export class SessionLimitReached extends Error {
  constructor(readonly user: number) {
    super(`user ${user} has reached its session limit`);
  }
}
