import { parseV2Login, type V2Login } from "../protocol/resume.ts";
import { ReplayRate } from "./replay-rate.ts";
import type { Maybe, State } from "../state/state.ts";
import { catchUpV1, catchUpV2, startingPoints, type CatchUp, type StartingPoints } from "./catch-up.ts";
import type { Delivery } from "./delivery.ts";
import type { ReplayLog } from "./replay.ts";
import { then } from "./maybe.ts";
import { sameSecret } from "./secret.ts";

export type DuplicatePolicy = "replace" | "reject";

/** What a login attempt decided. The transport carries it out; the rules live here. */
export type LoginDecision =
  | {
      ok: true;
      user: number;
      channels: number[];
      catchUp: CatchUp;
      replaces: boolean;
      /** The browser's number in a cluster that counts --sessions across nodes (session-limit.ts). */
      session?: number;
      /** The browser left before it could be admitted: undoes the claim and holds its catch-up's whispers again. */
      abandon(): Maybe<void>;
    }
  | { ok: false; why: "malformed" | "unknown" | "wrong-salt" | "duplicate" | "resume-rate" };

export interface LoginOptions {
  state: State;
  delivery: Delivery;
  replay: ReplayLog;
  duplicate: DuplicatePolicy;
  /**
   * --sessions. Above 1 a user already online is no reason to refuse: the transport, which knows how
   * many browsers the user has, applies --duplicate past the limit.
   */
  sessions?: number;
  /** Held messages kept per offline user: whispers handed back by an abandoned login count against it. */
  heldLimit: number;
  /** How much replay a user's logins may be sent (shared with the sessions, which charge it). */
  replayRate?: ReplayRate;
}

/**
 * Checks a browser's `ID!SALT` and, when it is accepted, takes the user's held messages and channels.
 * Malformed, unknown and wrong-salt logins are told apart only for logs: the browser sees one code.
 * Once the user is claimed, every way the login can end without the browser admitted undoes the claim:
 * otherwise the user would look online for good, and whispers to it would be "sent" to nobody.
 */
export function createLogin({ state, delivery, replay, duplicate, heldLimit, sessions = 1, replayRate = new ReplayRate() }: LoginOptions) {
  /** Puts whispers taken for a login that did not happen back in the user's held queue, in order. */
  const holdAgain = (user: number, held: string[], i = 0): Maybe<void> => {
    if (i >= held.length) return;
    return then(state.hold(user, held[i]!, heldLimit), () => holdAgain(user, held, i + 1));
  };

  const claimed = (user: number, resume: V2Login | undefined, starts: StartingPoints | undefined, online: boolean, session: number | void): Maybe<LoginDecision> =>
    // A kill that lands while the login waits on the state would find no browser to close: once the
    // user is claimed (what follows about it now waits for the login), check it still exists.
    then(state.userSalt(user), (still): Maybe<LoginDecision> => {
      if (still === undefined) return then(delivery.unclaim(user, session ?? undefined), () => ({ ok: false as const, why: "unknown" as const }));
      return then(state.channelsOf(user), (channels) =>
        then(resume ? catchUpV2(replay, resume, user, channels, starts) : catchUpV1, (catchUp) =>
          // Taken last: nothing that can fail after it loses the user's whispers.
          then(state.takeHeld(user), (held) => ({
            ok: true as const,
            user,
            channels,
            catchUp: catchUp(held),
            replaces: online,
            session: session ?? undefined,
            abandon: () => then(delivery.unclaim(user, session ?? undefined), () => holdAgain(user, held)),
          })),
        ),
      );
    });

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
      // Checked once the salt is right (no one else can spend a user's replays) and before any work.
      if (resume && resume.positions.size > 0 && !replayRate.allows(user, Date.now())) return { ok: false, why: "resume-rate" };
      return then(delivery.isOnline(user), (online): Maybe<LoginDecision> => {
        if (online && duplicate === "reject" && sessions === 1) return { ok: false, why: "duplicate" };
        // Read before the claim, once the node keeps what arrives for the user: what is sent once the
        // user shows online is numbered after them, and reaches the browser.
        let starts: StartingPoints | undefined;
        const prepare = resume
          ? () => then(state.channelsOf(user), (channels) => then(startingPoints(replay, resume, user, channels), (points) => void (starts = points)))
          : undefined;
        return then(delivery.claim(user, prepare), (session) =>
          undoingOnFailure(() => claimed(user, resume, starts, online, session), () => delivery.unclaim(user, session ?? undefined)),
        );
      });
    });
  };
}

/**
 * Runs `run`; if it throws or rejects, runs `undo` and then fails with the same error. A failing undo
 * (the backend is away) does not hide the first error: the presence retries its releases.
 */
function undoingOnFailure<R>(run: () => Maybe<R>, undo: () => Maybe<void>): Maybe<R> {
  const fail = (error: unknown): Maybe<never> => {
    let undone: Maybe<void>;
    try {
      undone = undo();
    } catch {
      throw error;
    }
    if (undone instanceof Promise) {
      return undone.then(
        () => Promise.reject(error),
        () => Promise.reject(error),
      );
    }
    throw error;
  };
  let result: Maybe<R>;
  try {
    result = run();
  } catch (error) {
    return fail(error);
  }
  return result instanceof Promise ? result.catch(fail) : result;
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
