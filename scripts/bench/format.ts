// Medians, min–max ranges and fixed-digit numbers over rounds of figures, for the Markdown tables.

import { median } from "./report.ts";
import type { Figures } from "./scenarios.ts";

/** The median of `key` over rounds (NaN when no round has it). */
export function med(rows: Figures[] | undefined, key: string): number {
  return median((rows ?? []).map((r) => r[key] ?? Number.NaN));
}

/** `[min–max]` of `key` over rounds; empty for a single round. */
export function range(rows: Figures[] | undefined, key: string, digits: number): string {
  if (!rows || rows.length < 2) return "";
  const values = rows.map((r) => r[key] ?? 0);
  return `[${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)}]`;
}

/** The sum of `key` over rounds: losses are summed, not a median, so any loss shows. */
export function sum(rows: Figures[] | undefined, key: string): number {
  return (rows ?? []).reduce((s, r) => s + (r[key] ?? 0), 0);
}

export function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "–";
}
