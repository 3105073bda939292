// The SQLite state against the shared State contract (durability included), then what only a file
// can get wrong: refusing files it must not use, rolling back a failed call, and behaving exactly as
// the memory state over arbitrary sequences of calls.

import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { createConsola } from "consola";
import fc from "fast-check";
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryState } from "../../src/state/memory.ts";
import { openDataFile, SCHEMA_VERSION } from "../../src/state/sqlite-file.ts";
import { openSqliteState, SqliteState } from "../../src/state/sqlite.ts";
import { StateOpenError, type State } from "../../src/state/state.ts";
import { SqliteReplay } from "../../src/state/replay-sqlite.ts";
import { WriteHealth } from "../../src/state/write-health.ts";
import { describeStateContract } from "./contract.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const freshFile = () => join(dir, `state-${++files}.db`);

const paths = new WeakMap<State, string>();
describeStateContract("sqlite", {
  open() {
    const path = freshFile();
    const state = openSqliteState(path, { sync: "normal" });
    paths.set(state, path);
    return state;
  },
  reopen(state) {
    const path = paths.get(state)!;
    state.close();
    const again = openSqliteState(path, { sync: "full" });
    paths.set(again, path);
    return again;
  },
});

describe("opening a data file", () => {
  const refused = (path: string) => {
    try {
      openSqliteState(path, { sync: "full" }).close();
    } catch (error) {
      expect(error).toBeInstanceOf(StateOpenError);
      return (error as Error).message;
    }
    throw new Error(`${path} was opened`);
  };

  test("creates the file when absent, in WAL mode, and reopens it", () => {
    const path = freshFile();
    openSqliteState(path, { sync: "full" }).close();
    const db = new Database(path);
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: SCHEMA_VERSION });
    db.close();
    openSqliteState(path, { sync: "normal" }).close();
  });

  test("a file from a newer webtalk is refused and left as it was", () => {
    const path = freshFile();
    openSqliteState(path, { sync: "full" }).close();
    const db = new Database(path);
    db.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(refused(path)).toBe(
      `data file ${path} has schema version ${SCHEMA_VERSION + 1}, written by a newer webtalk; this one reads up to ${SCHEMA_VERSION}`,
    );
    const after = new Database(path);
    expect(after.query("PRAGMA user_version").get()).toEqual({ user_version: SCHEMA_VERSION + 1 });
    after.close();
  });

  test("a file that is not SQLite is refused and left as it was", async () => {
    const path = freshFile();
    const junk = "this is not a database\n".repeat(300);
    writeFileSync(path, junk);
    expect(refused(path)).toBe(`data file ${path} is not a SQLite database`);
    expect(await Bun.file(path).text()).toBe(junk);
  });

  test("another program's SQLite database is refused", () => {
    const path = freshFile();
    const db = new Database(path);
    db.run("CREATE TABLE invoices (id INTEGER PRIMARY KEY)");
    db.close();
    expect(refused(path)).toBe(`data file ${path} is not a webtalk data file (another program's SQLite database?)`);
  });

  test("a damaged file is refused at open, not at some later command", () => {
    const path = freshFile();
    const state = openSqliteState(path, { sync: "normal" });
    for (let i = 0; i < 2000; i++) state.createUser(`salt-${i}-${"s".repeat(40)}`);
    state.close();
    // Overwrite pages in the middle of the file: b-tree pages no longer parse.
    const fd = openSync(path, "r+");
    writeSync(fd, new Uint8Array(4096 * 3).fill(0x5a), 0, 4096 * 3, 4096 * 3);
    closeSync(fd);
    expect(refused(path)).toStartWith(`data file ${path} is damaged: `);
  });

  test("a path that cannot be written is refused with the reason", () => {
    const file = join(dir, "plain-file");
    writeFileSync(file, "");
    const sub = join(dir, "a-directory");
    mkdirSync(sub);
    expect(refused(join(dir, "missing", "x.db"))).toBe(
      `cannot open data file ${join(dir, "missing", "x.db")} for writing: directory ${join(dir, "missing")} does not exist`,
    );
    expect(refused(join(file, "x.db"))).toBe(`cannot open data file ${join(file, "x.db")} for writing: ${file} is not a directory`);
    expect(refused(sub)).toBe(`cannot open data file ${sub} for writing: it is a directory`);
  });

  test("a file already open (another webtalk) is refused until it is closed", () => {
    const path = freshFile();
    const first = openSqliteState(path, { sync: "full" });
    const id = first.createUser("s");
    expect(refused(path)).toBe(`data file ${path} is in use by another process (another webtalk?)`);
    first.close();
    const second = openSqliteState(path, { sync: "full" });
    expect(second.userSalt(id)).toBe("s");
    second.close();
  });
});

test("a data file restored from an old backup issues none of the IDs issued after the backup", () => {
  const path = freshFile();
  const backup = `${path}.backup`;
  let state = openSqliteState(path, { sync: "full" });
  state.createUser("before");
  state.close(); // checkpointed: the file alone is the backup
  copyFileSync(path, backup);
  state = openSqliteState(path, { sync: "full" });
  const after = [state.createUser("a"), state.createUser("b"), state.createChannel()];
  state.close();
  for (const file of [path, `${path}-wal`, `${path}-shm`]) rmSync(file, { force: true });
  copyFileSync(backup, path);
  state = openSqliteState(path, { sync: "full" });
  expect(state.createUser("restored")).toBeGreaterThan(Math.max(after[0]!, after[1]!));
  expect(state.createChannel()).toBeGreaterThan(after[2]!);
  state.close();
});

describe("a call that fails", () => {
  test("changes nothing: every write is one transaction", () => {
    const db = openDataFile(freshFile(), { sync: "full" });
    const state = new SqliteState(db);
    const first = state.createUser("first");
    const counter = () => db.query<{ next: number }, []>("SELECT next FROM counters WHERE name = 'user'").get()!.next;
    // A failure in the last statement of createUser (as a full disk would cause) rolls back the
    // counter and the user row written before it.
    db.run("CREATE TEMP TRIGGER fail AFTER INSERT ON members BEGIN SELECT RAISE(ABORT, 'simulated failure'); END");
    expect(() => state.createUser("second")).toThrow("simulated failure");
    db.run("DROP TRIGGER fail");
    expect(state.counts()).toEqual({ users: 1, channels: 1, held: 0 });
    expect(counter()).toBe(first + 1);
    expect(db.query("SELECT count(*) AS n FROM users").get()).toEqual({ n: 1 });
    expect(state.createUser("third")).toBeGreaterThan(first);
    state.close();
  });
});

test("a full disk: the write that fails changes nothing and is logged, and later writes work", () => {
  const path = freshFile();
  const db = openDataFile(path, { sync: "full" });
  const lines: string[] = [];
  const log = createConsola({ reporters: [{ log: (entry) => void lines.push(entry.args.join(" ")) }] });
  const state = new SqliteState(db, log);
  const user = state.createUser("s");
  state.store("kept", "yes");
  // SQLite's own page limit stands in for the disk: writes past it fail with SQLITE_FULL.
  const { page_count } = db.query<{ page_count: number }, []>("PRAGMA page_count").get()!;
  db.run(`PRAGMA max_page_count = ${page_count}`);
  expect(() => {
    for (let i = 0; ; i++) state.store(`filler-${i}`, "x".repeat(20_000));
  }).toThrow("database or disk is full");
  expect(() => state.hold(user, "y".repeat(50_000), 10)).toThrow("database or disk is full");
  expect(state.counts()).toEqual({ users: 1, channels: 1, held: 0 });
  expect(state.takeHeld(user)).toEqual([]);
  expect(state.retrieve("kept")).toBe("yes");
  expect(lines.filter((line) => line.startsWith("data file write failed, nothing was changed: "))).toHaveLength(2);
  db.run("PRAGMA max_page_count = 1073741823");
  state.hold(user, "room again", 10);
  expect(state.takeHeld(user)).toEqual(["room again"]);
  expect(state.createUser("t")).toBeGreaterThan(user);
  state.close();
  const check = new Database(path);
  expect(check.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
  check.close();
});

test("a full disk under the replay log: no throw, lost positions answer a gap, the problem is reported until a write succeeds", () => {
  const path = freshFile();
  const db = openDataFile(path, { sync: "full" });
  const health = new WriteHealth(db.filename);
  const replay = new SqliteReplay(db, { count: 100, ageMs: 60_000, bytes: 1 << 20 }, { health });
  const state = new SqliteState(db, undefined, health);
  replay.append("c1", "kept");
  replay.flush();
  const { page_count } = db.query<{ page_count: number }, []>("PRAGMA page_count").get()!;
  db.run(`PRAGMA max_page_count = ${page_count}`);
  for (let i = 0; i < 20; i++) replay.append("c1", "y".repeat(20_000));
  expect(() => replay.flush()).not.toThrow();
  expect(state.problem?.()).toContain(`data file ${db.filename}: writes fail (database or disk is full)`);
  // Position 1 was written, but what followed it was not: replaying from it would skip messages.
  expect(replay.since("c1", 1)).toEqual({ gap: true });
  expect(replay.since("c1", 21)).toEqual({ gap: false, entries: [] });
  db.run("PRAGMA max_page_count = 1073741823");
  state.store("k", "v");
  expect(state.problem?.()).toBeUndefined();
  const epoch = replay.epoch;
  replay.close();
  state.close();
  // The run lost appends, so it was not marked clean: the next start is a new epoch, every position a gap.
  const again = openDataFile(path, { sync: "full" });
  expect(new SqliteReplay(again, { count: 100, ageMs: 60_000, bytes: 1 << 20 }).epoch).not.toBe(epoch);
  again.close(true);
});

describe("SqliteState and MemoryState", () => {
  // Small ranges, so that calls mostly meet users, channels and keys that exist.
  const id = fc.integer({ min: 0, max: 8 });
  const text = fc.string({ maxLength: 6, unit: "binary" });
  const call = fc.oneof(
    fc.tuple(fc.constant("createUser" as const), text),
    fc.tuple(fc.constant("userSalt" as const), id),
    fc.tuple(fc.constant("deleteUser" as const), id),
    fc.tuple(fc.constant("createChannel" as const)),
    fc.tuple(fc.constant("channelExists" as const), id),
    fc.tuple(fc.constant("deleteChannel" as const), id),
    fc.tuple(fc.constant("join" as const), id, id),
    fc.tuple(fc.constant("leave" as const), id, id),
    fc.tuple(fc.constant("channelsOf" as const), id),
    fc.tuple(fc.constant("members" as const), id, id, fc.integer({ min: 0, max: 4 })),
    fc.tuple(fc.constant("memberCount" as const), id),
    fc.tuple(fc.constant("counts" as const)),
    fc.tuple(fc.constant("hold" as const), id, text, fc.integer({ min: 0, max: 3 })),
    fc.tuple(fc.constant("takeHeld" as const), id),
    fc.tuple(fc.constant("store" as const), fc.string({ maxLength: 2 }), text),
    fc.tuple(fc.constant("clear" as const), fc.string({ maxLength: 2 })),
    fc.tuple(fc.constant("retrieve" as const), fc.string({ maxLength: 2 })),
    fc.tuple(fc.constant("restart" as const)),
  );
  type Call = typeof call extends fc.Arbitrary<infer T> ? T : never;

  /**
   * IDs come from the clock, so two states issue different ones: the calls name users and channels
   * by the order they were created in (user k is the k-th created, channel 1 the global one, channel
   * k the (k-1)-th created), and results are translated back the same way. Numbers beyond those
   * created stand for IDs that were never issued.
   */
  class Numbering {
    readonly users: number[] = [];
    readonly channels: number[] = [];
    user = (k: number) => this.users[k - 1] ?? k;
    channel = (k: number) => (k === 1 ? 1 : (this.channels[k - 2] ?? k));
    userIndex = (id: number) => this.users.indexOf(id) + 1;
    channelIndex = (id: number) => (id === 1 ? 1 : this.channels.indexOf(id) + 2);
  }

  function apply(state: State, n: Numbering, [name, ...args]: Call): unknown {
    if (name === "restart") return undefined;
    const call = (...a: unknown[]) => (state[name] as (...a: unknown[]) => unknown)(...a);
    const userList = (ids: unknown) => (Array.isArray(ids) ? ids.map(n.userIndex).sort((a, b) => a - b) : ids);
    const [a, b, c] = args as [number, number, number];
    switch (name) {
      case "createUser": {
        const id = call(a) as number;
        n.users.push(id);
        return n.userIndex(id);
      }
      case "createChannel": {
        const id = call() as number;
        n.channels.push(id);
        return n.channelIndex(id);
      }
      case "userSalt":
      case "deleteUser":
      case "takeHeld":
        return call(n.user(a));
      case "channelsOf":
        return (call(n.user(a)) as number[]).map(n.channelIndex);
      case "hold":
        return call(n.user(a), b, c);
      case "channelExists":
      case "memberCount":
        return call(n.channel(a));
      // deleteChannel's former members come in no particular order.
      case "deleteChannel":
        return userList(call(n.channel(a)));
      case "join":
      case "leave":
        return call(n.channel(a), n.user(b));
      case "members":
        return userList(call(n.channel(a), n.user(b), c));
      default:
        return call(...args);
    }
  }

  test("answer every sequence of calls alike, restarts of the file included", () => {
    fc.assert(
      fc.property(fc.array(call, { maxLength: 80 }), (calls) => {
        const path = freshFile();
        const memory = new MemoryState();
        let sqlite = openSqliteState(path, { sync: "normal" });
        const [inMemory, inSqlite] = [new Numbering(), new Numbering()];
        try {
          for (const c of calls) {
            if (c[0] === "restart") {
              sqlite.close();
              sqlite = openSqliteState(path, { sync: "normal" });
            }
            expect(apply(sqlite, inSqlite, c)).toEqual(apply(memory, inMemory, c));
          }
        } finally {
          sqlite.close();
          rmSync(path, { force: true });
        }
      }),
      { numRuns: 100 },
    );
  }, 30_000);
});

test("after all of the above, a data file passes SQLite's integrity check", () => {
  const path = freshFile();
  const state = openSqliteState(path, { sync: "full" });
  for (let i = 0; i < 50; i++) state.hold(state.createUser(`s${i}`), "x".repeat(i * 100), 5);
  state.close();
  const db = new Database(path, { readonly: true });
  expect(db.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
  db.close();
});
