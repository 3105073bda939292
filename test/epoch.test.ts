// Issue 14, item 1 (how a backend learns of a restart): the state's epoch names the lifetime of its
// IDs. `[stats]` ends with `epoch=EPOCH`; `[listen]` is followed by `[epoch] EPOCH`, the connection's
// first event. It stays across a `--data` restart on the same file, and changes with every in-memory
// start and with a new data file. End to end, with real server processes.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventHub } from "../src/core/events.ts";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient } from "./helpers.ts";
import { MAIN, LOOPBACK, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-epoch-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the server, reads its epoch both ways (they must agree), and stops it. */
async function epochOfRun(args: string[]): Promise<string> {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, ...args]);
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const stats = await ctl.ok("[stats]");
    const fromStats = / epoch=(\S+)$/.exec(stats)?.[1];
    expect(fromStats, `[stats] answered ${stats}`).toMatch(/^[A-Za-z0-9_-]{8,}$/);
    // Pipelined: the event comes right after [listen]'s reply, before the next command's.
    ctl.write(encodeFrames(["[listen]", "[ping]"]));
    expect(await ctl.replies.take(3, "[listen], [epoch] and [ping]")).toEqual(["[ok] listening", `[epoch] ${fromStats}`, "[ok] pong"]);
    ctl.close();
    return fromStats!;
  } finally {
    await server.stop();
  }
}

describe("the epoch", () => {
  test("changes with every in-memory start", async () => {
    const first = await epochOfRun([]);
    expect(await epochOfRun([])).not.toBe(first);
  }, 30_000);

  test("stays across a --data restart on the same file, and changes with a new data file", async () => {
    const data = join(dir, "webtalk.db");
    const first = await epochOfRun(["--data", data]);
    expect(await epochOfRun(["--data", data])).toBe(first);
    const other = await epochOfRun(["--data", join(dir, "other.db")]);
    expect(other).not.toBe(first);
    for (const file of [data, `${data}-wal`, `${data}-shm`]) rmSync(file, { force: true });
    const recreated = await epochOfRun(["--data", data]);
    expect(recreated).not.toBe(first);
    expect(recreated).not.toBe(other);
  }, 40_000);
});

test("EventHub.epochChanged tells every listener of this process once per new epoch", () => {
  const hub = new EventHub();
  const heard: string[][] = [[], []];
  hub.add((event) => heard[0]!.push(event));
  hub.add((event) => heard[1]!.push(event));
  // In a cluster events go through the bus; every node finds out about its state on its own.
  hub.relayThrough(() => {
    throw new Error("an epoch change is not relayed");
  });
  hub.epochChanged("first");
  hub.epochChanged("second");
  hub.epochChanged("second");
  expect(heard).toEqual([
    ["[epoch] first", "[epoch] second"],
    ["[epoch] first", "[epoch] second"],
  ]);
});
