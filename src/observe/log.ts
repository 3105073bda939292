import { createConsola, LogLevels, type ConsolaInstance } from "consola";
import type { LogLevel } from "../config/schema.ts";

/** The process's logger; subsystems take `log.withTag(name)`. Salts and secrets are never logged. */
export function createLog(level: LogLevel): ConsolaInstance {
  return createConsola({ level: LogLevels[level], formatOptions: { date: true, colors: false } });
}
