// What a process costs, read from /proc: CPU time (utime + stime, every thread) and resident memory.

import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** Wall time of the sample, ms (performance.now()). */
  at: number;
  /** utime + stime of every thread, µs. */
  cpuUs: number;
  rssBytes: number;
  /** Peak RSS since the process started (VmHWM). */
  peakRssBytes: number;
}

export function sampleProc(pid: number): ProcSample {
  const at = performance.now();
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name (field 2) may contain spaces: fields are counted from the closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  return {
    at,
    cpuUs: (ticks * 1e6) / TICKS_PER_SECOND,
    rssBytes: kb(status, "VmRSS") * 1024,
    peakRssBytes: kb(status, "VmHWM") * 1024,
  };
}

/** CPU used between two samples, µs, and the share of one core it represents. */
export function cpuBetween(a: ProcSample, b: ProcSample): { us: number; cores: number } {
  const us = b.cpuUs - a.cpuUs;
  const wallUs = (b.at - a.at) * 1000;
  return { us, cores: wallUs > 0 ? us / wallUs : 0 };
}

/** Sums samples over several processes (the load generator's workers). */
export function sampleMany(pids: readonly number[]): ProcSample {
  const samples = pids.map(sampleProc);
  return {
    at: performance.now(),
    cpuUs: samples.reduce((sum, s) => sum + s.cpuUs, 0),
    rssBytes: samples.reduce((sum, s) => sum + s.rssBytes, 0),
    peakRssBytes: samples.reduce((sum, s) => sum + s.peakRssBytes, 0),
  };
}

function kb(status: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) : 0;
}
