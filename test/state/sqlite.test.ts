// The SQLite state against the shared State contract (durability included), then what only a file
// can get wrong: refusing files it must not use, rolling back a failed call, and behaving exactly as
// the memory state over arbitrary sequences of calls.

import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryState } from "../../src/state/memory.ts";
import { openDataFile, SCHEMA_VERSION } from "../../src/state/sqlite-file.ts";
import { openSqliteState, SqliteState } from "../../src/state/sqlite.ts";
import { StateOpenError, type State } from "../../src/state/state.ts";
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
