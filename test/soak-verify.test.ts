// The soak's oracle must catch each kind of fault: a PASS from an oracle that cannot fail proves nothing.

import { describe, expect, test } from "bun:test";
import { emptyVerdict, messageKey, messageText, parseKey, verifyUser, type Expected, type ReceivedSession } from "../scripts/soak/verify.ts";

const k = (seq: number, backend = 1) => messageKey(backend, seq);
const meant = (session: number, ...seqs: number[]): Expected[] => seqs.map((seq) => ({ key: k(seq), session }));
const got = (id: number, seqs: number[], closedByClient = false): ReceivedSession => ({ id, keys: seqs.map((s) => k(s)), closedByClient });

function verdictOf(expected: Expected[], sessions: ReceivedSession[]) {
  const verdict = emptyVerdict();
  verifyUser(7, expected, sessions, verdict);
  const { examples, ...counts } = verdict;
  return counts;
}

describe("message texts", () => {
  test("round-trip through their keys, padded or not", () => {
    expect(parseKey(messageText(3, 42, 0))).toBe(k(42, 3));
    expect(parseKey(messageText(3, 42, 100))).toBe(k(42, 3));
    expect(parseKey("3:42x")).toBeUndefined();
    expect(parseKey("hello")).toBeUndefined();
  });
});

describe("verifyUser", () => {
  test("everything once, in order, in the right sessions is clean", () => {
    expect(verdictOf([...meant(1, 1, 2), ...meant(2, 3)], [got(1, [1, 2]), got(2, [3])])).toEqual({
      expected: 3, received: 3, lost: 0, duplicated: 0, outOfOrder: 0, misdelivered: 0, inFlight: 0,
    });
  });

  test("a message missing from a session the server closed is lost", () => {
    expect(verdictOf(meant(1, 1, 2, 3), [got(1, [1, 3])]).lost).toBe(1);
    expect(verdictOf(meant(1, 1, 2, 3), [got(1, [1, 2])]).lost).toBe(1);
  });

  test("when the browser closed itself, only messages after its last arrival may be missing", () => {
    expect(verdictOf(meant(1, 1, 2, 3), [got(1, [1], true)])).toMatchObject({ lost: 0, inFlight: 2 });
    expect(verdictOf(meant(1, 1, 2, 3), [got(1, [1, 3], true)])).toMatchObject({ lost: 1, inFlight: 0 });
  });

  test("a message twice in one session is duplicated; again in a later session, misdelivered", () => {
    expect(verdictOf(meant(1, 1, 2), [got(1, [1, 1, 2])]).duplicated).toBe(1);
    expect(verdictOf([...meant(1, 1), ...meant(2, 2)], [got(1, [1]), got(2, [1, 2])]).misdelivered).toBe(1);
  });

  test("an earlier message after a later one from the same sender is out of order", () => {
    expect(verdictOf(meant(1, 1, 2, 3), [got(1, [2, 1, 3])]).outOfOrder).toBe(1);
    // Other senders' sequences are independent.
    const two: Expected[] = [{ key: k(5, 1), session: 1 }, { key: k(1, 2), session: 1 }];
    expect(verdictOf(two, [{ id: 1, keys: [k(5, 1), k(1, 2)], closedByClient: false }]).outOfOrder).toBe(0);
  });

  test("a message nobody meant for this user, or meant for another session, is misdelivered", () => {
    expect(verdictOf(meant(1, 1), [got(1, [1, 9])]).misdelivered).toBe(1);
    expect(verdictOf([...meant(1, 1), ...meant(2, 2)], [got(1, [1, 2]), got(2, [])])).toMatchObject({ misdelivered: 1, lost: 1 });
  });
});
