import type { Database } from "bun:sqlite";
import type { ReplayLimits, ReplayLog, Since } from "../core/replay.ts";
import { newSalt } from "../core/secret.ts";

/** How often windows are trimmed by age. */
const AGE_SWEEP_MS = 10_000;

/**
 * The replay log in the data file, so offsets and windows survive a restart. Appends are written in
 * one transaction per turn of the event loop rather than one fsync per message, so shouts stay fast;
 * the price is that a crash can lose the last turn's appends. A run that did not close cleanly
 * therefore starts a new epoch: browsers are told `#gap`, never replayed a wrong message.
 */
export class SqliteReplay implements ReplayLog {
  readonly epoch: string;
  readonly #db: Database;
  readonly #limits: ReplayLimits;
  readonly #sql;
  readonly #last = new Map<string, number>();
  #pending: { source: string; offset: number; at: number; text: string }[] = [];
  #flushScheduled = false;
  #lastSweep = 0;

  constructor(db: Database, limits: ReplayLimits) {
    this.#db = db;
    this.#limits = limits;
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
    };
    const clean = this.#sql.meta.get("clean")?.value === "1";
    const kept = this.#sql.meta.get("epoch")?.value;
    this.epoch = clean && kept ? kept : newSalt().slice(0, 12);
    db.transaction(() => {
      this.#sql.setMeta.run("epoch", this.epoch);
      this.#sql.setMeta.run("clean", "0");
      // A new epoch invalidates every position: the old windows can never be asked for again.
      if (this.epoch !== kept) db.run("DELETE FROM replay; DELETE FROM replay_offsets;");
    })();
  }

  append(key: string, text: string): number {
    const offset = this.#lastOffset(key) + 1;
    this.#last.set(key, offset);
    this.#pending.push({ source: key, offset, at: Date.now(), text });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return offset;
  }

  since(key: string, offset: number, max = -1): Since {
    this.flush();
    const last = this.#lastOffset(key);
    if (offset > last) return { gap: true };
    if (offset === last) return { gap: false, entries: [] };
    // Offsets in a window are consecutive: the page is whole when it starts right after the position.
    const page = this.#sql.page.all(key, Date.now() - this.#limits.ageMs, offset, max === Infinity ? -1 : max);
    if (page.length === 0 || page[0]!.offset > offset + 1) return { gap: true };
    return { gap: false, entries: page.map(({ offset, text }) => ({ offset, text })) };
  }

  drop(key: string): void {
    this.flush();
    this.#last.delete(key);
    this.#db.transaction(() => {
      this.#sql.dropWindow.run(key);
      this.#sql.dropOffset.run(key);
    })();
  }

  /** Writes what was appended since the last flush, in one transaction. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
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

  /** Flushes and marks the run as closed cleanly, so the next start keeps the epoch. */
  close(): void {
    this.flush();
    this.#sql.setMeta.run("clean", "1");
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
