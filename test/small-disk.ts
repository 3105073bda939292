// A small real disk for the tests of a full one: a 2 MB tmpfs, and a way to fill it to the last byte.

import { afterAll } from "bun:test";
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SmallDisk {
  /** The mount point (a plain temporary folder when the mount failed). */
  dir: string;
  /** Why the tmpfs could not be mounted (not root, no mount), or undefined: skip the tests when set. */
  problem: string | undefined;
}

/**
 * Mounts a 2 MB tmpfs on a new temporary folder for this test file and unmounts and removes it after
 * the file's tests. Mounting needs root: where it fails, `problem` says why and a SKIPPING warning naming
 * `what` is printed, so a skipped test is never mistaken for a passed one. Processes with files on the
 * disk must be ended (afterEach) before it is unmounted, or the mount stays busy.
 */
export function mountSmallDisk(prefix: string, what: string): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir], { encoding: "utf8" });
  const problem = mounted.error?.message ?? (mounted.status === 0 ? undefined : mounted.stderr.trim() || `exit ${mounted.status}`);
  if (problem) console.warn(`SKIPPING ${what}: cannot mount a tmpfs (${problem})`);
  afterAll(() => {
    if (!problem) spawnSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, problem };
}

/** Writes `filler` until the filesystem says ENOSPC: afterwards not one more block fits. */
export function fillDisk(filler: string): void {
  const fd = openSync(filler, "a");
  try {
    for (const size of [65_536, 4096, 512, 1]) {
      const chunk = new Uint8Array(size);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}
