// The data file's seal: FILE.seal beside a --data file names the file this path last used. A file
// restored from a backup, copied here or put in place by hand carries an older seal (or none), and
// passing it off as the file it replaced would bring back users killed since and reissue v2 offsets
// that pages already saw. Such a file starts a new state epoch and a new replay epoch instead, so
// backends create their users again and pages are told `#epoch`.
//
// The seal is a random token, written into the file (committed) and into FILE.seal at every open and
// every clean close. While the file's token changes FILE.seal names the old and the new one (written
// before the file, then again with the new one alone), so a full disk or a crash between the writes
// keeps the epoch of the same file. FILE.seal is deliberately left out of what a backup restores.

import type { Database } from "bun:sqlite";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { realpathSync } from "node:fs";
import type { ConsolaInstance } from "consola";
import { newSalt } from "../core/secret.ts";
import { StateOpenError } from "./state.ts";

/**
 * Where the seal of the data file `file` (an absolute path) is kept: beside the file itself, so a
 * symlinked path and the real one share one seal (the file is opened by then, so it exists).
 */
export function sealPath(file: string): string {
  let real = file;
  try {
    real = realpathSync(file);
  } catch {
    // Not there (yet): the path as given.
  }
  return `${real}.seal`;
}

/**
 * At open, after the schema is ready: when the file is not the one FILE.seal names, forgets its
 * epochs (a new state epoch now; the replay log starts a new one when it finds none), then seals it
 * anew. `created`: the file was made just now (a new epoch that needs no warning). Throws
 * StateOpenError when FILE.seal cannot be read or written.
 */
export function sealAtOpen(db: Database, file: string, created: boolean, log?: ConsolaInstance): void {
  const expected = readSeal(file);
  const found = readMeta(db, "seal");
  const token = newToken();
  const kept = found !== undefined && expected.includes(found);
  const seal = (tokens: string[]) => {
    try {
      writeSeal(file, tokens);
    } catch (error) {
      throw new StateOpenError(`cannot write ${sealPath(file)}: ${(error as Error).message}`);
    }
  };
  // FILE.seal first names both the file's seal and the new one, so a start that fails (a full disk)
  // or dies between the writes leaves the two matching: the same file never becomes a new epoch.
  if (kept) seal([found, token]);
  db.transaction(() => {
    if (!kept) forgetEpochs(db);
    writeFileSeal(db, token);
  }).immediate();
  seal([token]);
  // After the seal is written: a start that fails says one line, not a warning and an error.
  if (!kept && !created) log?.warn(`${why(file, found, expected[0])}: new epoch ${stateEpoch(db)}; backends must create their users again`);
}

/**
 * At a clean close: seals the file anew, so a copy taken while it ran (a snapshot of the file alone)
 * no longer matches once restored. Never throws: a close on a full disk still closes, and a half-done
 * reseal only makes the next start a new epoch.
 */
export function sealAtClose(db: Database, file: string, log?: ConsolaInstance): void {
  const token = newToken();
  try {
    const current = readMeta(db, "seal");
    // As at open: FILE.seal names both while the file changes, so a write that fails halfway (a full
    // disk) leaves the file still accepted at the next start.
    if (current !== undefined) writeSeal(file, [current, token]);
    writeFileSeal(db, token);
    writeSeal(file, [token]);
  } catch (error) {
    log?.warn(`data file not resealed at close (a copy taken while it ran would not be told apart from it): ${(error as Error).message}`);
  }
}

/** A new state epoch, and no replay epoch: SqliteReplay starts a new one and drops the old windows. */
function forgetEpochs(db: Database): void {
  writeMeta(db, "state_epoch", newToken());
  db.run("DELETE FROM replay_meta WHERE name IN ('epoch', 'clean')");
}

function writeFileSeal(db: Database, token: string): void {
  writeMeta(db, "seal", token);
}

function stateEpoch(db: Database): string | undefined {
  return readMeta(db, "state_epoch");
}

function readMeta(db: Database, name: string): string | undefined {
  return db.query<{ value: string }, [string]>("SELECT value FROM replay_meta WHERE name = ?").get(name)?.value;
}

function writeMeta(db: Database, name: string, value: string): void {
  db.query("INSERT INTO replay_meta VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value").run(name, value);
}

function why(file: string, found: string | undefined, expected: string | undefined): string {
  if (found === undefined) return `data file ${file} was last used by a webtalk without data file seals`;
  if (expected === undefined) {
    return `data file ${file} has no ${sealPath(file)} beside it (restored from a backup, or copied or moved without it?)`;
  }
  return `data file ${file} is not the one this path last used (restored from a backup or copied?)`;
}

/**
 * The tokens FILE.seal accepts (one, or two while the file is being resealed); none when there is no
 * FILE.seal. Throws StateOpenError when it cannot be read.
 */
function readSeal(file: string): string[] {
  try {
    return readFileSync(sealPath(file), "utf8").split(/\s+/).filter((t) => t !== "");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new StateOpenError(`cannot read ${sealPath(file)}: ${(error as Error).message}`);
  }
}

/** Replaces FILE.seal atomically (a temporary file renamed over it, both fsynced), mode 0600. */
function writeSeal(file: string, tokens: string[]): void {
  const path = sealPath(file);
  const temp = `${path}.tmp`;
  rmSync(temp, { force: true });
  const fd = openSync(temp, "wx", 0o600);
  try {
    writeSync(fd, `${tokens.join(" ")}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  // The directory the rename happened in: the real file's (sealPath follows a symlinked path).
  syncDirectory(dirname(path));
}

/** Makes the rename itself last through a power loss. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function newToken(): string {
  return newSalt().slice(0, 12);
}
