// Opening webtalk's SQLite data file: lock it, check what it is, create or upgrade its schema.
// Every way this can fail is a StateOpenError with one clear line: never a silent fresh start.

import { Database, SQLiteError } from "bun:sqlite";
import { closeSync, existsSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { ConsolaInstance } from "consola";
import { sealAtOpen } from "./data-seal.ts";
import { StateOpenError } from "./state.ts";

/** Marks the file as webtalk's ("wtk1"), so another program's SQLite file is refused, not reused. */
export const APPLICATION_ID = 0x77746b31;
/** The schema this code writes. A file with a higher version was written by a newer webtalk. */
export const SCHEMA_VERSION = 3;

export type SyncMode = "full" | "normal";

export interface DataFileOptions {
  sync: SyncMode;
  /** Reads every page at open so a damaged file fails here, not at some later command. Default true. */
  check?: boolean;
  /** Hears why an existing file starts a new epoch (restored, copied: see data-seal.ts). */
  log?: ConsolaInstance;
}

// Version 1. The ID counters live in the file, updated in the same transaction as the row they
// number, so an ID that was ever answered is never handed out again. `users.held` counts the user's
// held messages, so holding one more never counts rows. Held messages and stored values can be
// ~100 KB, so their tables keep rowids (WITHOUT ROWID suits small rows only).
const SCHEMA_V1 = `
  CREATE TABLE counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO counters VALUES ('user', 1), ('channel', 2);
  CREATE TABLE users (id INTEGER PRIMARY KEY, salt TEXT NOT NULL, held INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE channels (id INTEGER PRIMARY KEY);
  INSERT INTO channels VALUES (1);
  CREATE TABLE members (channel INTEGER NOT NULL, user INTEGER NOT NULL, PRIMARY KEY (channel, user)) WITHOUT ROWID;
  CREATE INDEX members_by_user ON members (user, channel);
  CREATE TABLE held (seq INTEGER PRIMARY KEY, user INTEGER NOT NULL, message TEXT NOT NULL);
  CREATE INDEX held_by_user ON held (user, seq);
  CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

// Version 2: the webtalk.v2 replay log. `replay_meta` keeps the epoch and whether the last run closed
// cleanly; `replay_offsets` the last offset per source; `replay` the window itself.
const SCHEMA_V2 = `
  CREATE TABLE replay_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE replay_offsets (source TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE replay (source TEXT NOT NULL, offset INTEGER NOT NULL, at INTEGER NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (source, offset));
  CREATE INDEX replay_by_age ON replay (at);
`;

// Version 3: replay floors. A member that joined a channel after it was numbered is never replayed
// what the channel sent before (the channel's last offset at the join); by user, so deleting one is quick.
const SCHEMA_V3 = `
  CREATE TABLE replay_floors (source TEXT NOT NULL, user INTEGER NOT NULL, floor INTEGER NOT NULL,
    PRIMARY KEY (source, user)) WITHOUT ROWID;
  CREATE INDEX replay_floors_by_user ON replay_floors (user);
`;

/**
 * Opens (creating when absent) the data file, locked to this process for as long as it is open,
 * in WAL mode with the given sync mode, its schema created or checked, and sealed (data-seal.ts):
 * a file that is not the one this path last used has lost its epochs.
 */
export function openDataFile(path: string, { sync, check = true, log }: DataFileOptions): Database {
  const file = resolve(path);
  let db: Database | undefined;
  try {
    createPrivate(file);
    db = new Database(file, { create: true, readwrite: true, strict: true });
    // Exclusive locking: the first write takes the file's lock and keeps it until close, so a
    // second webtalk on the same file fails at startup instead of handing out the same IDs. It also
    // means WAL needs no shared-memory file beside the database.
    db.run("PRAGMA locking_mode = EXCLUSIVE");
    db.run("PRAGMA busy_timeout = 0");
    const mode = db.query<{ journal_mode: string }, []>("PRAGMA journal_mode = WAL").get();
    if (mode?.journal_mode !== "wal") throw new StateOpenError(`data file ${file}: cannot use WAL mode`);
    const created = db.transaction(() => prepareSchema(db!, file)).immediate();
    if (check) quickCheck(db, file);
    sealAtOpen(db, file, created, log);
    db.run(`PRAGMA synchronous = ${sync === "full" ? "FULL" : "NORMAL"}`);
    // Where fsync does not reach the platter (macOS), FULL asks for F_FULLFSYNC; elsewhere a no-op.
    db.run(`PRAGMA fullfsync = ${sync === "full" ? "ON" : "OFF"}`);
    db.run("PRAGMA checkpoint_fullfsync = ON");
    db.run("PRAGMA foreign_keys = OFF");
    return db;
  } catch (error) {
    db?.close(true);
    throw explain(error, file);
  }
}

/**
 * Creates the file 0600 when absent: it holds every user's salt. SQLite gives the WAL (and SHM)
 * the database file's permissions, so they follow. An existing file keeps the mode its owner chose.
 */
function createPrivate(file: string): void {
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch {
    // It exists, or cannot be created: SQLite's own open then says which, through explain().
  }
}

/** Creates or upgrades the schema; answers whether the file was empty (made just now). */
function prepareSchema(db: Database, file: string): boolean {
  const version = pragma(db, "user_version");
  const application = pragma(db, "application_id");
  const tables = db.query<{ n: number }, []>("SELECT count(*) AS n FROM sqlite_schema").get()?.n ?? 0;
  if (application !== APPLICATION_ID && (application !== 0 || tables > 0)) {
    throw new StateOpenError(`data file ${file} is not a webtalk data file (another program's SQLite database?)`);
  }
  if (version > SCHEMA_VERSION) {
    throw new StateOpenError(
      `data file ${file} has schema version ${version}, written by a newer webtalk; this one reads up to ${SCHEMA_VERSION}`,
    );
  }
  if (version === 0) {
    db.run(SCHEMA_V1);
    db.run(`PRAGMA application_id = ${APPLICATION_ID}`);
  }
  if (version < 2) db.run(SCHEMA_V2);
  if (version < 3) db.run(SCHEMA_V3);
  // Later versions add their upgrade steps here, each `if (version < N)`, inside this transaction.
  if (version < SCHEMA_VERSION) db.run(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  return version === 0;
}

function quickCheck(db: Database, file: string): void {
  const rows = db.query<{ quick_check: string }, []>("PRAGMA quick_check(3)").all();
  const problems = rows.map((row) => row.quick_check).filter((text) => text !== "ok");
  if (problems.length > 0) throw new StateOpenError(`data file ${file} is damaged: ${problems.join("; ")}`);
}

function pragma(db: Database, name: string): number {
  const row = db.query<Record<string, number>, []>(`PRAGMA ${name}`).get();
  return row?.[name] ?? 0;
}

/** Turns SQLite's terse codes into a line that says what is wrong with the file and where. */
function explain(error: unknown, file: string): Error {
  if (error instanceof StateOpenError) return error;
  if (!(error instanceof SQLiteError)) return error as Error;
  const code = error.code ?? "";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new StateOpenError(`data file ${file} is in use by another process (another webtalk?)`);
  }
  if (code.startsWith("SQLITE_NOTADB")) return new StateOpenError(`data file ${file} is not a SQLite database`);
  if (code.startsWith("SQLITE_CORRUPT")) return new StateOpenError(`data file ${file} is damaged: ${error.message}`);
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_PERM")) {
    return new StateOpenError(`cannot open data file ${file} for writing: ${whyNotWritable(file) ?? error.message}`);
  }
  return new StateOpenError(`cannot open data file ${file}: ${error.message} (${code})`);
}

function whyNotWritable(file: string): string | undefined {
  const dir = dirname(file);
  if (existsSync(file) && statSync(file).isDirectory()) return "it is a directory";
  if (!existsSync(dir)) return `directory ${dir} does not exist`;
  if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
  return undefined;
}
