// The figures as a Markdown table: medians over rounds with min–max, ratios, targets met or not.

import { readFileSync, writeFileSync } from "node:fs";
import type { BenchResults } from "./run.ts";

interface Row {
  label: string;
  key: string;
  unit: Unit;
  /** The target, as text and as a test on the figures. */
  target?: string;
  met?: (m: Medians, server: string) => boolean | undefined;
  /** What bounds the figure, or the metric prefix whose serverCores/clientCores say so. */
  bound?: string;
  cores?: string;
  /** Lost messages are summed over rounds, not a median: any loss shows. */
  sum?: boolean;
}

type Unit = "count" | "rate" | "us" | "ms" | "bytes" | "kb";

interface Medians {
  get(server: string, key: string): number | undefined;
}

const MARK_START = "<!-- bench:start -->";
const MARK_END = "<!-- bench:end -->";

export function renderReport(results: BenchResults): string {
  const servers = Object.keys(results.results);
  const primary = servers[0]!;
  const hasLimit = servers.includes("limit");
  const hasRedis = servers.includes("redis");
  const m = medians(results);
  const head = ["figure", ...servers.filter((s) => s !== "redis").map(label), ...(hasLimit ? [`${primary} / limit`] : [])];
  if (hasRedis) head.push("Redis", `${primary} / Redis`);
  head.push("target", "bound by");
  const lines = [
    `${results.date.slice(0, 10)} · ${results.machine} · ${results.options.rounds} round(s), medians (min–max)` +
      (results.options.pin ? (hasLimit ? " · servers on core 0, load generator on core 1" : " · load generator on core 1") : ""),
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i === 0 ? "---" : "--:")).join("|")}|`,
  ];
  for (const row of rows(results.options.sizes, results.options.whisperUsers)) {
    if (m.get(primary, row.key) === undefined) continue;
    const cells = [row.label];
    for (const server of servers) if (server !== "redis") cells.push(cell(results, server, row));
    if (hasLimit) cells.push(ratio(m.get(primary, row.key), m.get("limit", row.key)));
    if (hasRedis) {
      const redis = m.get("redis", row.key);
      cells.push(redis === undefined ? "" : cell(results, "redis", row), ratio(m.get(primary, row.key), redis));
    }
    const met = row.met?.(m, primary);
    cells.push(row.target ? `${row.target}${met === undefined ? "" : met ? " ✅" : " ❌"}` : "");
    cells.push(bound(m, primary, row));
    lines.push(`| ${cells.join(" | ")} |`);
  }
  lines.push("", `Run took ${Math.round(results.seconds)} s.`);
  return lines.join("\n");
}

/** Replaces the table between the bench markers of a Markdown file. */
export function updateDocs(path: string, report: string): void {
  const text = readFileSync(path, "utf8");
  const start = text.indexOf(MARK_START);
  const end = text.indexOf(MARK_END);
  if (start < 0 || end < start) throw new Error(`${path} has no ${MARK_START} … ${MARK_END} section`);
  writeFileSync(path, `${text.slice(0, start + MARK_START.length)}\n${report}\n${text.slice(end)}`);
}

function rows(sizes: number[], whisperUsers: number): Row[] {
  const out: Row[] = [];
  const ratioAtMost = (key: string, max: number) => (m: Medians, server: string) => {
    const w = m.get(server, key);
    const l = m.get("limit", key);
    return w === undefined || l === undefined ? undefined : w <= max * l;
  };
  const ratioAtLeast = (key: string, min: number) => (m: Medians, server: string) => {
    const w = m.get(server, key);
    const l = m.get("limit", key);
    return w === undefined || l === undefined ? undefined : w >= min * l;
  };
  for (const n of sizes) {
    const judged = n === 1000 || n === 10000;
    out.push(
      { label: `fan-out ${n}: delivered msg/s`, key: `fanout.${n}.perSec`, unit: "rate", cores: `fanout.${n}` },
      {
        label: `fan-out ${n}: server CPU µs / delivery`,
        key: `fanout.${n}.cpuUsPer`,
        unit: "us",
        target: judged ? "≤ 1.25 × limit" : undefined,
        met: judged ? ratioAtMost(`fanout.${n}.cpuUsPer`, 1.25) : undefined,
        bound: "server CPU (the figure itself)",
      },
      { label: `fan-out ${n}: lost (sum of rounds)`, key: `fanout.${n}.lost`, unit: "count", sum: true, target: "0", met: (m, server) => m.get(server, `fanout.${n}.lost`) === 0 },
      { label: `fan-out ${n}, full speed: latency p50 / p99 / max, ms`, key: `fanout.${n}.p99Ms`, unit: "ms", bound: "window of deliveries in flight" },
      { label: `fan-out ${n}: peak server RSS`, key: `fanout.${n}.peakRssBytes`, unit: "bytes" },
      {
        label: `fan-out ${n} at 100 shouts/s: latency p50 / p99 / max, ms (ratio of p99)`,
        key: `rate.${n}.p99Ms`,
        unit: "ms",
        target: n === 10000 ? "≤ 1.2 × limit" : undefined,
        met: n === 10000 ? ratioAtMost(`rate.${n}.p99Ms`, 1.2) : undefined,
        cores: `rate.${n}`,
      },
      { label: `fan-out ${n} at 100 shouts/s: lost (sum)`, key: `rate.${n}.lost`, unit: "count", sum: true, target: "0", met: (m, server) => m.get(server, `rate.${n}.lost`) === 0 },
    );
  }
  out.push(
    {
      label: `[whisper] pipelined to ${whisperUsers} users: /s`,
      key: "whisper.perSec",
      unit: "rate",
      target: "≥ 300,000/s",
      met: (m, server) => (m.get(server, "whisper.perSec") ?? 0) >= 300_000,
      cores: "whisper",
    },
    { label: "[whisper]: server CPU µs / whisper", key: "whisper.cpuUsPer", unit: "us" },
    { label: "[whisper]: lost (sum)", key: "whisper.lost", unit: "count", sum: true, target: "0", met: (m, server) => m.get(server, "whisper.lost") === 0 },
    {
      label: "[store] pipelined, one connection: /s",
      key: "store.perSec",
      unit: "rate",
      target: "≥ 1,000,000/s or ≥ 0.55 × Redis",
      met: (m, server) => {
        const w = m.get(server, "store.perSec") ?? 0;
        const r = m.get("redis", "store.perSec");
        return w >= 1_000_000 || (r !== undefined && w >= 0.55 * r);
      },
      cores: "store",
    },
    { label: "[store] pipelined: server CPU µs / command", key: "store.cpuUsPer", unit: "us" },
    {
      label: "serial round trips: /s",
      key: "serial.perSec",
      unit: "rate",
      target: "≥ 0.9 × limit",
      met: ratioAtLeast("serial.perSec", 0.9),
      bound: "waking an idle core per round trip",
    },
    { label: "serial round trips: p50 µs", key: "serial.p50Us", unit: "count" },
    { label: "idle logged-in browsers", key: "connections.browsers", unit: "count", target: "≥ 15,000", met: (m, server) => (m.get(server, "connections.browsers") ?? 0) >= 15_000, bound: "20,000 open files per process" },
    {
      label: "server RSS per logged-in browser",
      key: "connections.rssBytesPerConn",
      unit: "kb",
      target: "≤ 2 KB",
      met: (m, server) => (m.get(server, "connections.rssBytesPerConn") ?? Infinity) <= 2048,
    },
    {
      label: "logins/s",
      key: "connections.loginsPerSec",
      unit: "rate",
      target: "≥ 0.9 × limit",
      met: ratioAtLeast("connections.loginsPerSec", 0.9),
      bound: "load generator (handshakes on one core)",
    },
    { label: "server CPU µs / login", key: "connections.cpuUsPerLogin", unit: "us" },
  );
  return out;
}

function medians(results: BenchResults): Medians {
  return {
    get(server, key) {
      const values = series(results, server, key);
      if (values.length === 0) return undefined;
      return key.endsWith(".lost") ? values.reduce((a, b) => a + b, 0) : median(values);
    },
  };
}

function series(results: BenchResults, server: string, key: string): number[] {
  return (results.results[server] ?? []).map((round) => round[key]).filter((v): v is number => v !== undefined && Number.isFinite(v));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function cell(results: BenchResults, server: string, row: Row): string {
  const values = series(results, server, row.key);
  if (values.length === 0) return "";
  if (row.sum) return format(values.reduce((a, b) => a + b, 0), row.unit);
  const mid = format(median(values), row.unit);
  let text = mid;
  if (values.length > 1) text += ` (${format(Math.min(...values), row.unit)}–${format(Math.max(...values), row.unit)})`;
  // Latency rows read p50 / p99 (min–max of p99) / max, each a median over rounds.
  if (row.key.endsWith(".p99Ms")) {
    const p50 = series(results, server, row.key.replace("p99Ms", "p50Ms"));
    const max = series(results, server, row.key.replace("p99Ms", "maxMs"));
    if (p50.length > 0) text = `${format(median(p50), "ms")} / ${text}`;
    if (max.length > 0) text = `${text} / ${format(median(max), "ms")}`;
  }
  return text;
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0) return "";
  return (a / b).toFixed(2);
}

function bound(m: Medians, server: string, row: Row): string {
  if (row.bound) return row.bound;
  if (!row.cores) return "";
  const s = m.get(server, `${row.cores}.serverCores`);
  const c = m.get(server, `${row.cores}.clientCores`);
  if (s === undefined || c === undefined) return "";
  const which = s >= 0.85 ? "server CPU" : c >= 0.85 ? "client CPU" : "neither core full";
  return `${which} (server ${s.toFixed(2)}, client ${c.toFixed(2)} cores)`;
}

function label(server: string): string {
  return server;
}

function format(value: number, unit: Unit): string {
  switch (unit) {
    case "rate":
      return value >= 1e6 ? `${(value / 1e6).toFixed(2)} M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)} k` : value.toFixed(0);
    case "us":
      return value.toFixed(value < 10 ? 3 : 1);
    case "ms":
      return value.toFixed(value < 10 ? 2 : 1);
    case "bytes":
      return `${(value / 1024 / 1024).toFixed(0)} MB`;
    case "kb":
      return `${(value / 1024).toFixed(2)} KB`;
    case "count":
      return Math.round(value).toLocaleString("en-US");
  }
}
