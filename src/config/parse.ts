// Value parsers for the settings table: each throws a message naming what was expected.

import type { RawValue } from "./schema.ts";

export function wholeNumber(raw: RawValue, min: number, max: number): number {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text)) throw new Error(`expected a whole number from ${min} to ${max}`);
  const value = Number(text);
  if (value < min || value > max) throw new Error(`expected a whole number from ${min} to ${max}`);
  return value;
}

export function seconds(raw: RawValue): number {
  const text = String(raw).trim();
  const value = Number(text);
  if (text === "" || !Number.isFinite(value) || value <= 0 || value > 86_400) {
    throw new Error("expected seconds, a number above 0 and at most 86400");
  }
  return value;
}

export function origins(raw: RawValue): string[] {
  const list = String(raw)
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const origin of list) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new Error(`expected origins like https://example.com, got ${origin}`);
  }
  return list;
}

/** The same six words for flag, variable and file: anything else is a mistake worth exit 2. */
export function flag(raw: RawValue): boolean {
  if (raw === true || raw === false) return raw;
  const text = String(raw).toLowerCase();
  if (text === "true" || text === "1" || text === "yes") return true;
  if (text === "false" || text === "0" || text === "no") return false;
  throw new Error("expected true or false (or 1, 0, yes, no)");
}

export function oneOf<T extends string>(raw: RawValue, options: readonly T[]): T {
  const text = String(raw);
  if (!(options as readonly string[]).includes(text)) throw new Error(`expected one of ${options.join(", ")}`);
  return text as T;
}
