// A setting's default as people read it, for --help and docs/reference/configuration.md alike.

import { formatAddress, type Address } from "./address.ts";
import type { Setting } from "./schema.ts";

export function shownDefault(setting: Setting): string {
  if (setting.shownDefault !== undefined) return setting.shownDefault;
  const value: unknown = setting.default;
  if (Array.isArray(value)) return value.length === 0 ? "none" : value.join(",");
  if (typeof value === "object" && value !== null) return formatAddress(value as Address);
  return value === "" ? "none" : String(value);
}
