import type { Database } from "bun:sqlite";
import type { ConsolaInstance } from "consola";
import { bornMs, GLOBAL_STREAM, type ReplayLimits, type ReplayLog, type Since } from "../core/replay.ts";
import { newSalt } from "../core/secret.ts";
import { StampOrder } from "../core/stamp-order.ts";
import { StateOpenError } from "./state.ts";
import { WriteHealth } from "./write-health.ts";

/** How often windows are trimmed by age. */
const AGE_SWEEP_MS = 10_000;

/**
 * The replay log in the data file, so offsets and windows survive a restart. Appends are written in
 * one transaction per turn of the event loop rather than one fsync per message, so shouts stay fast;
 * the price is that a crash can lose the last turn's appends. A run that did not close cleanly
 * therefore starts a new epoch: browsers are told `#gap`, never replayed a wrong message. So does a
 * file restored from a backup or copied here: openDataFile finds it unsealed and leaves it no epoch
 * (data-seal.ts), or its offsets would start again from the copy's and pages would skip the new ones.
 * A flush that fails (a full disk) loses its turn's appends the same way: positions before them
 * answer a gap for the rest of the run, and the run is not marked clean, so the next start is a
 * new epoch too. The shouts themselves were delivered; only their replay is lost.
 */
export class SqliteReplay implements ReplayLog {
  readonly epoch: string;
  readonly immediate = true;
  readonly #db: Database;
  readonly #limits: ReplayLimits;
  readonly #sql;
  readonly #last = new Map<string, number>();
  #pending: { source: string; offset: number; at: number; text: string }[] = [];
  #flushScheduled = false;
  #lastSweep = 0;
  readonly #health: WriteHealth;
  readonly #log: ConsolaInstance | undefined;
  /** Per source, the newest offset whose write failed: a position before it cannot be replayed. */
  readonly #lost = new Map<string, number>();
  /** Whether channel 1's stamps are in order, so a birth floor is one indexed row rather than a scan. */
  #globalOrder: StampOrder;
  /** Whether the last flush failed, so a streak of failures is logged once. */
  #failing = false;

  /** Throws StateOpenError (one line) when the file cannot take the run's first write. */
  constructor(db: Database, limits: ReplayLimits, options: { health?: WriteHealth; log?: ConsolaInstance } = {}) {
    this.#db = db;
    this.#limits = limits;
    this.#health = options.health ?? new WriteHealth(db.filename);
    this.#log = options.log;
    this.#sql = {
      meta: db.query<{ value: string }, [string]>("SELECT value FROM replay_meta WHERE name = ?"),
      setMeta: db.query("INSERT INTO replay_meta VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
      last: db.query<{ last: number }, [string]>("SELECT last FROM replay_offsets WHERE source = ?"),
      setLast: db.query("INSERT INTO replay_offsets VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET last = excluded.last"),
      insert: db.query("INSERT INTO replay VALUES (?, ?, ?, ?)"),
      trim: db.query("DELETE FROM replay WHERE source = ? AND offset <= ?"),
      window: db.query<{ offset: number; at: number; text: string }, [string, number]>(
        "SELECT offset, at, text FROM replay WHERE source = ? AND at >= ? ORDER BY offset",
      ),
      page: db.query<{ offset: number; at: number; text: string }, [string, number, number, number]>(
        "SELECT offset, at, text FROM replay WHERE source = ? AND at >= ? AND offset > ? ORDER BY offset LIMIT ?",
      ),
      expire: db.query("DELETE FROM replay WHERE at < ?"),
      dropWindow: db.query("DELETE FROM replay WHERE source = ?"),
      dropOffset: db.query("DELETE FROM replay_offsets WHERE source = ?"),
      floor: db.query<{ floor: number }, [string, number]>("SELECT floor FROM replay_floors WHERE source = ? AND user = ?"),
      // The newest entry after a position stamped at or before a time: a new user's floor in channel 1.
      // Scans every entry after the position, so it is asked only where the stamps are out of order.
      bornAfter: db.query<{ offset: number | null }, [string, number, number]>(
        "SELECT max(offset) AS offset FROM replay WHERE source = ? AND offset > ? AND at <= ?",
      ),
      // Where stamps are in order, the same floor is the entry before the first stamped after the time:
      // the walk stops there, so a page past the floor reads one row.
      firstAfter: db.query<{ offset: number }, [string, number, number]>(
        "SELECT offset FROM replay WHERE source = ? AND offset > ? AND at > ? ORDER BY offset LIMIT 1",
      ),
      newest: db.query<{ offset: number | null }, [string]>("SELECT max(offset) AS offset FROM replay WHERE source = ?"),
      newestAt: db.query<{ at: number }, [string]>("SELECT at FROM replay WHERE source = ? ORDER BY offset DESC LIMIT 1"),
      // The newest entry stamped earlier than the one before it, in a window kept from an earlier run.
      disorder: db.query<{ offset: number | null }, [string]>(
        "SELECT max(r.offset) AS offset FROM replay r JOIN replay p ON p.source = r.source AND p.offset = r.offset - 1 WHERE r.source = ? AND r.at < p.at",
      ),
      setFloor: db.query("INSERT INTO replay_floors VALUES (?, ?, ?) ON CONFLICT (source, user) DO UPDATE SET floor = excluded.floor"),
      unsetFloor: db.query("DELETE FROM replay_floors WHERE source = ? AND user = ?"),
      forget: db.query("DELETE FROM replay_floors WHERE user = ?"),
      dropFloors: db.query("DELETE FROM replay_floors WHERE source = ?"),
    };
    const clean = this.#sql.meta.get("clean")?.value === "1";
    const kept = this.#sql.meta.get("epoch")?.value;
    this.epoch = clean && kept ? kept : newSalt().slice(0, 12);
    try {
      db.transaction(() => {
        this.#sql.setMeta.run("epoch", this.epoch);
        this.#sql.setMeta.run("clean", "0");
        // A new epoch invalidates every position: the old windows can never be asked for again.
        if (this.epoch !== kept) db.run("DELETE FROM replay; DELETE FROM replay_offsets; DELETE FROM replay_floors;");
      })();
    } catch (error) {
      throw new StateOpenError(`cannot start on data file ${db.filename}: ${(error as Error).message}`);
    }
    const disorder = this.#sql.disorder.get(GLOBAL_STREAM)?.offset ?? 0;
    this.#globalOrder = new StampOrder(disorder, this.#sql.newestAt.get(GLOBAL_STREAM)?.at ?? -Infinity);
  }

  append(key: string, text: string): number {
    const offset = this.#lastOffset(key) + 1;
    this.#last.set(key, offset);
    const at = Date.now();
    if (key === GLOBAL_STREAM) this.#globalOrder.stamped(offset, at);
    this.#pending.push({ source: key, offset, at, text });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return offset;
  }

  last(key: string): number {
    return this.#lastOffset(key);
  }

  since(key: string, offset: number, max = -1, member?: number): Since {
    this.flush();
    const last = this.#lastOffset(key);
    if (offset > last) return { gap: true };
    if (offset < (this.#lost.get(key) ?? 0)) return { gap: true };
    if (offset === last) return { gap: false, entries: [] };
    const from = member === undefined ? offset : this.#floorOf(key, offset, member);
    if (from >= last) return { gap: false, entries: [], floor: from };
    // Offsets in a window are consecutive: the page is whole when it starts right after the position.
    const page = this.#sql.page.all(key, Date.now() - this.#limits.ageMs, from, max === Infinity ? -1 : max);
    // Past the window, the page starts later: its #gap (as a floor), then what the window still holds.
    if (page.length === 0) return { gap: true };
    const entries = page.map(({ offset, text }) => ({ offset, text }));
    const floor = Math.max(from, entries[0]!.offset - 1);
    return floor > offset ? { gap: false, entries, floor } : { gap: false, entries };
  }

  /** Where a member's replay starts: after its position, its floor, and (channel 1) what predates it. */
  #floorOf(key: string, offset: number, member: number): number {
    const from = Math.max(offset, this.#sql.floor.get(key, member)?.floor ?? 0);
    if (key !== GLOBAL_STREAM) return from;
    const born = bornMs(member);
    if (!this.#globalOrder.inOrderFrom(from + 1)) return Math.max(from, this.#sql.bornAfter.get(key, from, born)?.offset ?? 0);
    const after = this.#sql.firstAfter.get(key, from, born)?.offset;
    return Math.max(from, after === undefined ? (this.#sql.newest.get(key)?.offset ?? 0) : after - 1);
  }

  /**
   * Records the floor at once (the join it follows is already durable). A failed write cannot leave a
   * resume reaching back past the join: every position before now answers a gap for the rest of the run.
   */
  joined(key: string, user: number): void {
    const last = this.#lastOffset(key);
    try {
      if (last === 0) this.#sql.unsetFloor.run(key, user);
      else this.#sql.setFloor.run(key, user, last);
    } catch (error) {
      this.#health.failed(error);
      this.#lost.set(key, Math.max(this.#lost.get(key) ?? 0, last));
      this.#log?.error(`replay floor write failed, positions in ${key} before this cannot be replayed until restart: ${(error as Error).message}`);
    }
  }

  /** A floor left behind only costs a row until the next join, leave or kill: a failure is not the command's. */
  left(key: string, user: number): void {
    this.#quietly(() => this.#sql.unsetFloor.run(key, user));
  }

  forget(user: number): void {
    this.#quietly(() => this.#sql.forget.run(user));
  }

  drop(key: string): void {
    this.flush();
    try {
      this.#db.transaction(() => {
        this.#sql.dropWindow.run(key);
        this.#sql.dropOffset.run(key);
        this.#sql.dropFloors.run(key);
      })();
    } catch (error) {
      throw this.#health.failed(error);
    }
    this.#last.delete(key);
    this.#lost.delete(key);
    if (key === GLOBAL_STREAM) this.#globalOrder = new StampOrder();
  }

  /**
   * Writes what was appended since the last flush, in one transaction. Never throws: it runs on its
   * own turn of the event loop, where a throw would end the process.
   */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    try {
      this.#write(pending);
      this.#health.succeeded();
      this.#failing = false;
    } catch (error) {
      this.#health.failed(error);
      for (const row of pending) this.#lost.set(row.source, row.offset);
      // Once per streak of failures: a full disk under a stream of shouts would fail every turn.
      if (!this.#failing) this.#log?.error(`replay log write failed, positions before this cannot be replayed until restart: ${(error as Error).message}`);
      this.#failing = true;
    }
  }

  #write(pending: { source: string; offset: number; at: number; text: string }[]): void {
    const now = Date.now();
    this.#db.transaction(() => {
      const newest = new Map<string, number>();
      for (const row of pending) {
        if (this.#limits.count > 0) this.#sql.insert.run(row.source, row.offset, row.at, row.text);
        newest.set(row.source, row.offset);
      }
      for (const [source, last] of newest) {
        this.#sql.setLast.run(source, last);
        this.#sql.trim.run(source, last - this.#limits.count);
      }
      if (now - this.#lastSweep > AGE_SWEEP_MS) {
        this.#sql.expire.run(now - this.#limits.ageMs);
        this.#lastSweep = now;
      }
    })();
  }

  /**
   * Flushes and marks the run as closed cleanly, so the next start keeps the epoch; a run that lost
   * appends is not marked. Never throws: a close on a full disk still closes.
   */
  close(): void {
    this.flush();
    if (this.#lost.size > 0) return;
    try {
      this.#sql.setMeta.run("clean", "1");
    } catch (error) {
      this.#log?.warn(`replay log not marked clean (the next start begins a new epoch): ${(error as Error).message}`);
    }
  }

  #quietly(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.#health.failed(error);
    }
  }

  #lastOffset(key: string): number {
    let last = this.#last.get(key);
    if (last === undefined) {
      last = this.#sql.last.get(key)?.last ?? 0;
      this.#last.set(key, last);
    }
    return last;
  }
}
