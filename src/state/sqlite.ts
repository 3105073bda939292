import type { Database } from "bun:sqlite";
import type { Histogram } from "../observe/histogram.ts";
import type { ConsolaInstance } from "consola";
import { newSalt } from "../core/secret.ts";
import { sealAtClose } from "./data-seal.ts";
import { nextId } from "./id-clock.ts";
import { openDataFile, type DataFileOptions } from "./sqlite-file.ts";
import { GLOBAL_CHANNEL, type JoinResult, type State, type StateCounts } from "./state.ts";
import { WriteHealth } from "./write-health.ts";

/**
 * Opens the SQLite data file at `path` (created when absent) and returns the state it holds.
 * Throws StateOpenError when the file is damaged, newer, another program's, locked or unwritable.
 */
export function openSqliteState(path: string, options: DataFileOptions & { log?: ConsolaInstance }): SqliteState {
  return new SqliteState(openDataFile(path, options), options.log);
}

type Id = { id: number };

/**
 * Everything in one SQLite file, so a restart loses nothing. bun:sqlite is synchronous: each call
 * answers at once, and a call that writes is one transaction, committed (with `sync: "full"`,
 * fsynced) before it returns. A call that throws (disk full) has changed nothing.
 */
export class SqliteState implements State {
  readonly #db: Database;
  readonly #log: ConsolaInstance | undefined;
  readonly #health: WriteHealth;
  readonly #sql;
  readonly #transaction: <T>(fn: () => T) => T;
  /** Totals for counts(), counted once at open and kept in step after each commit. */
  #totals: StateCounts;
  #closed = false;
  /** Seconds per write transaction, commit (and fsync) included; for /metrics. */
  readonly #commits: Histogram | undefined;
  readonly #epoch: string;

  /**
   * `log` hears of writes that fail (disk full, I/O error): the caller sees a StateWriteFailed.
   * `health` is shared with the replay log on the same file.
   */
  constructor(db: Database, log?: ConsolaInstance, health = new WriteHealth(db.filename), commits?: Histogram) {
    this.#db = db;
    this.#commits = commits;
    this.#log = log;
    this.#health = health;
    this.#sql = prepare(db);
    const transaction = db.transaction((fn: () => unknown) => fn());
    this.#transaction = transaction as <T>(fn: () => T) => T;
    this.#totals = { ...this.#sql.totals.get()! };
    // openDataFile writes a new one whenever the file is new, restored or copied (data-seal.ts);
    // this only covers a file opened without it.
    db.query("INSERT OR IGNORE INTO replay_meta (name, value) VALUES ('state_epoch', ?)").run(newSalt().slice(0, 12));
    this.#epoch = db.query<{ value: string }, []>("SELECT value FROM replay_meta WHERE name = 'state_epoch'").get()!.value;
  }

  /** Lives as long as the data file at its path: a new, restored or copied file is a new epoch. */
  epoch(): string {
    return this.#epoch;
  }

  createUser(salt: string): number {
    const id = this.#write(() => {
      const { id } = this.#sql.nextId.get(clockId(), "user")!;
      this.#sql.insertUser.run(id, salt);
      this.#sql.joinGlobal.run(GLOBAL_CHANNEL, id, GLOBAL_CHANNEL);
      return id;
    });
    this.#totals.users++;
    return id;
  }

  userSalt(user: number): string | undefined {
    return this.#sql.salt.get(user)?.salt;
  }

  deleteUser(user: number): boolean {
    const held = this.#write(() => {
      const row = this.#sql.deleteUser.get(user);
      if (!row) return undefined;
      this.#sql.leaveAll.run(user);
      this.#sql.dropHeld.run(user);
      return row.held;
    });
    if (held === undefined) return false;
    this.#totals.users--;
    this.#totals.held -= held;
    return true;
  }

  createChannel(): number {
    const id = this.#write(() => {
      const { id } = this.#sql.nextId.get(clockId(), "channel")!;
      this.#sql.insertChannel.run(id);
      return id;
    });
    this.#totals.channels++;
    return id;
  }

  channelExists(channel: number): boolean {
    return this.#sql.channel.get(channel) !== null;
  }

  deleteChannel(channel: number): number[] | undefined {
    const members = this.#write(() => {
      if (this.#sql.deleteChannel.run(channel).changes === 0) return undefined;
      return column<number>(this.#sql.dropMembers.values(channel));
    });
    if (members) this.#totals.channels--;
    return members;
  }

  join(channel: number, user: number): JoinResult {
    return this.#write(() => {
      const missing = this.#missing(channel, user);
      if (missing) return missing;
      return this.#sql.join.run(channel, user).changes > 0 ? "added" : "ok";
    });
  }

  leave(channel: number, user: number): JoinResult {
    return this.#write(() => {
      const missing = this.#missing(channel, user);
      if (missing) return missing;
      this.#sql.leave.run(channel, user);
      return "ok";
    });
  }

  channelsOf(user: number): number[] {
    return column<number>(this.#sql.channelsOf.values(user));
  }

  members(channel: number, after: number, limit: number): number[] | undefined {
    if (!this.channelExists(channel)) return undefined;
    // SQLite reads a negative LIMIT as none, as Infinity reads in memory.
    return column<number>(this.#sql.members.values(channel, after, Number.isFinite(limit) ? limit : -1));
  }

  memberCount(channel: number): number | undefined {
    if (!this.channelExists(channel)) return undefined;
    return this.#sql.memberCount.get(channel)!.n;
  }

  counts(): StateCounts {
    return { ...this.#totals };
  }

  hold(user: number, message: string, limit: number): number {
    const added = this.#write(() => {
      const row = this.#sql.countHeld.get(user);
      if (!row) return undefined;
      this.#sql.insertHeld.run(user, message);
      const excess = Math.max(row.held + 1 - limit, 0);
      if (excess > 0) this.#sql.dropOldest.run(user, excess);
      this.#sql.setHeld.run(row.held + 1 - excess, user);
      return excess;
    });
    if (added === undefined) return 0;
    this.#totals.held += 1 - added;
    return added;
  }

  takeHeld(user: number): string[] {
    // Most logins find nothing held: answer from the read, with no write transaction to commit.
    if (!this.#sql.countHeld.get(user)?.held) return [];
    const held = this.#write(() => {
      const messages = column<string>(this.#sql.heldOf.values(user));
      this.#sql.dropHeld.run(user);
      this.#sql.setHeld.run(0, user);
      return messages;
    });
    this.#totals.held -= held.length;
    return held;
  }

  store(key: string, value: string): void {
    this.#write(() => this.#sql.store.run(key, value));
  }

  clear(key: string): void {
    this.#write(() => this.#sql.clear.run(key));
  }

  retrieve(key: string): string {
    return this.#sql.retrieve.get(key)?.value ?? "";
  }

  problem(): string | undefined {
    return this.#health.problem;
  }

  /**
   * Seals the file anew (data-seal.ts), checkpoints the WAL into the file and releases its lock; a
   * second close does nothing. Never throws: on a full disk the checkpoint may fail, and what was
   * committed is safe in the WAL anyway.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    sealAtClose(this.#db, this.#db.filename, this.#log);
    try {
      this.#db.run("PRAGMA optimize");
    } catch (error) {
      this.#log?.warn(`data file not optimized at close: ${(error as Error).message}`);
    }
    try {
      // true: finalize the prepared statements too, or the connection (and its lock) outlives close.
      this.#db.close(true);
    } catch (error) {
      this.#log?.warn(`data file closed with an error (committed writes are in its WAL): ${(error as Error).message}`);
    }
  }

  /** "no-channel" or "no-user" when the pair cannot be (un)joined, in that order of checks. */
  #missing(channel: number, user: number): "no-channel" | "no-user" | undefined {
    if (this.#sql.channel.get(channel) === null) return "no-channel";
    if (this.#sql.salt.get(user) === null) return "no-user";
    return undefined;
  }

  /**
   * Runs `fn` as one transaction: committed when it returns, rolled back when it throws, as a
   * StateWriteFailed naming the file, so the command that caused it answers that error.
   */
  #write<T>(fn: () => T): T {
    let result: T;
    const started = performance.now();
    try {
      result = this.#transaction(fn);
      this.#commits?.observe((performance.now() - started) / 1000);
    } catch (error) {
      this.#log?.error(`data file write failed, nothing was changed: ${(error as Error).message}`);
      throw this.#health.failed(error);
    }
    this.#health.succeeded();
    return result;
  }
}

/** The smallest ID nextId allows now: the clock in microseconds (the counter gives the rest of the rule). */
function clockId(): number {
  return nextId(-1);
}

/** The first column of every row (bun:sqlite's `values()` answers rows as arrays). */
function column<T>(rows: unknown[][]): T[] {
  return rows.map((row) => row[0] as T);
}

/** Every statement, prepared once when the file is opened. */
function prepare(db: Database) {
  return {
    totals: db.prepare<StateCounts, []>(
      "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM channels) AS channels, (SELECT count(*) FROM held) AS held",
    ),
    // nextId (id-clock.ts) in SQL: the counter holds the next ID, and an ID is never below the clock,
    // so a file restored from an old backup or made anew issues no ID an earlier file did. The row that
    // takes the ID is written in the same transaction.
    nextId: db.prepare<Id, [number, string]>(
      "UPDATE counters SET next = max(next, ?) + 1 WHERE name = ? RETURNING next - 1 AS id",
    ),
    insertUser: db.prepare<never, [number, string]>("INSERT INTO users (id, salt) VALUES (?, ?)"),
    joinGlobal: db.prepare<never, [number, number, number]>(
      "INSERT INTO members (channel, user) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM channels WHERE id = ?)",
    ),
    salt: db.prepare<{ salt: string }, [number]>("SELECT salt FROM users WHERE id = ?"),
    deleteUser: db.prepare<{ held: number }, [number]>("DELETE FROM users WHERE id = ? RETURNING held"),
    leaveAll: db.prepare<never, [number]>("DELETE FROM members WHERE user = ?"),
    insertChannel: db.prepare<never, [number]>("INSERT INTO channels (id) VALUES (?)"),
    channel: db.prepare<{ id: number }, [number]>("SELECT id FROM channels WHERE id = ?"),
    deleteChannel: db.prepare<never, [number]>("DELETE FROM channels WHERE id = ?"),
    dropMembers: db.prepare<never, [number]>("DELETE FROM members WHERE channel = ? RETURNING user"),
    join: db.prepare<never, [number, number]>("INSERT OR IGNORE INTO members (channel, user) VALUES (?, ?)"),
    leave: db.prepare<never, [number, number]>("DELETE FROM members WHERE channel = ? AND user = ?"),
    channelsOf: db.prepare<never, [number]>("SELECT channel FROM members WHERE user = ? ORDER BY channel"),
    members: db.prepare<never, [number, number, number]>(
      "SELECT user FROM members WHERE channel = ? AND user > ? ORDER BY user LIMIT ?",
    ),
    memberCount: db.prepare<{ n: number }, [number]>("SELECT count(*) AS n FROM members WHERE channel = ?"),
    countHeld: db.prepare<{ held: number }, [number]>("SELECT held FROM users WHERE id = ?"),
    insertHeld: db.prepare<never, [number, string]>(
      "INSERT INTO held (user, message) VALUES (?, ?)",
    ),
    dropOldest: db.prepare<never, [number, number]>(
      "DELETE FROM held WHERE seq IN (SELECT seq FROM held WHERE user = ? ORDER BY seq LIMIT ?)",
    ),
    setHeld: db.prepare<never, [number, number]>("UPDATE users SET held = ? WHERE id = ?"),
    heldOf: db.prepare<never, [number]>("SELECT message FROM held WHERE user = ? ORDER BY seq"),
    dropHeld: db.prepare<never, [number]>("DELETE FROM held WHERE user = ?"),
    store: db.prepare<never, [string, string]>("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
    clear: db.prepare<never, [string]>("DELETE FROM kv WHERE key = ?"),
    retrieve: db.prepare<{ value: string }, [string]>("SELECT value FROM kv WHERE key = ?"),
  };
}
