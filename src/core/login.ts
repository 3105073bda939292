import { parseV2Login } from "../protocol/resume.ts";
import type { Maybe, State } from "../state/state.ts";
import { catchUpV1, catchUpV2, type CatchUp } from "./catch-up.ts";
import type { Delivery } from "./delivery.ts";
import type { ReplayLog } from "./replay.ts";
import { then } from "./maybe.ts";
import { sameSecret } from "./secret.ts";

export type DuplicatePolicy = "replace" | "reject";

/** What a login attempt decided. The transport carries it out; the rules live here. */
export type LoginDecision =
  | { ok: true; user: number; channels: number[]; catchUp: CatchUp; replaces: boolean }
  | { ok: false; why: "malformed" | "unknown" | "wrong-salt" | "duplicate" };

export interface LoginOptions {
  state: State;
  delivery: Delivery;
  replay: ReplayLog;
  duplicate: DuplicatePolicy;
}

/**
 * Checks a browser's `ID!SALT` and, when it is accepted, takes the user's held messages and channels.
 * Malformed, unknown and wrong-salt logins are told apart only for logs: the browser sees one code.
 */
export function createLogin({ state, delivery, replay, duplicate }: LoginOptions) {
  /** Checks a login message; `v2` when the browser chose the webtalk.v2 subprotocol. */
  return function login(message: string, v2: boolean): Maybe<LoginDecision> {
    const resume = v2 ? parseV2Login(message) : undefined;
    if (v2 && !resume) return { ok: false, why: "malformed" };
    const parsed = parseToken(resume ? resume.token : message);
    if (!parsed) return { ok: false, why: "malformed" };
    const [user, salt] = parsed;
    return then(state.userSalt(user), (expected): Maybe<LoginDecision> => {
      if (expected === undefined) return { ok: false, why: "unknown" };
      if (!sameSecret(salt, expected)) return { ok: false, why: "wrong-salt" };
      return then(delivery.isOnline(user), (online): Maybe<LoginDecision> => {
        if (online && duplicate === "reject") return { ok: false, why: "duplicate" };
        // A kill that lands while the login waits on the state would find no browser to close: once the
        // user is claimed (what follows about it now waits for the login), check it still exists.
        return then(delivery.claim(user), () =>
          then(state.userSalt(user), (still): Maybe<LoginDecision> => {
            if (still === undefined) return then(delivery.unclaim(user), () => ({ ok: false as const, why: "unknown" as const }));
            return then(state.channelsOf(user), (channels) =>
              then(state.takeHeld(user), (held) =>
                then(resume ? catchUpV2(replay, resume, user, channels, held) : catchUpV1(held), (catchUp) => ({
                  ok: true as const,
                  user,
                  channels,
                  catchUp,
                  replaces: online,
                })),
              ),
            );
          }),
        );
      });
    });
  };
}

function parseToken(token: string): [number, string] | undefined {
  const bang = token.indexOf("!");
  if (bang <= 0 || bang > 16) return undefined;
  for (let i = 0; i < bang; i++) {
    const c = token.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return [Number(token.slice(0, bang)), token.slice(bang + 1)];
}
