import type { Maybe, State } from "../state/state.ts";
import type { Delivery } from "./delivery.ts";
import { then } from "./maybe.ts";
import { sameSecret } from "./secret.ts";

export type DuplicatePolicy = "replace" | "reject";

/** What a login attempt decided. The transport carries it out; the rules live here. */
export type LoginDecision =
  | { ok: true; user: number; channels: number[]; held: string[]; replaces: boolean }
  | { ok: false; why: "malformed" | "unknown" | "wrong-salt" | "duplicate" };

export interface LoginOptions {
  state: State;
  delivery: Delivery;
  duplicate: DuplicatePolicy;
}

/**
 * Checks a browser's `ID!SALT` and, when it is accepted, takes the user's held messages and channels.
 * Malformed, unknown and wrong-salt logins are told apart only for logs: the browser sees one code.
 */
export function createLogin({ state, delivery, duplicate }: LoginOptions) {
  return function login(token: string): Maybe<LoginDecision> {
    const parsed = parseToken(token);
    if (!parsed) return { ok: false, why: "malformed" };
    const [user, salt] = parsed;
    return then(state.userSalt(user), (expected): Maybe<LoginDecision> => {
      if (expected === undefined) return { ok: false, why: "unknown" };
      if (!sameSecret(salt, expected)) return { ok: false, why: "wrong-salt" };
      const online = delivery.isOnline(user);
      if (online && duplicate === "reject") return { ok: false, why: "duplicate" };
      return then(state.channelsOf(user), (channels) =>
        then(state.takeHeld(user), (held) => ({ ok: true, user, channels, held, replaces: online })),
      );
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
