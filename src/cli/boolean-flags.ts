// The server's command line as the operator wrote it. citty reads `--upstream false` as `--upstream`
// (true) followed by a stray word "false": the opposite of what was meant. Read from the raw
// arguments instead, a boolean flag takes the next word as its value unless that word is another
// flag; and every word is accounted for, so a typo is an exit 2 rather than a server on defaults.

export interface RawFlags {
  /** Each boolean flag given, by name: its value as written, or true for a bare `--flag`. */
  booleans: Record<string, string | true>;
  /** Flags given that are not in `known`, as written (`--pubic`, `-x`). */
  unknown: string[];
  /** Arguments that belong to no flag (the server takes none): worth an exit 2, not silence. */
  strays: string[];
}

export interface FlagNames {
  /** Every flag the command takes, without dashes. */
  known: ReadonlySet<string>;
  /** Those that are switches: `--flag` alone means true. */
  booleans: ReadonlySet<string>;
}

/** Every flag in `known` that is not boolean takes a value: `--name=VALUE` or the next argument. */
export function readRawFlags(rawArgs: readonly string[], names: FlagNames): RawFlags {
  const found: RawFlags = { booleans: {}, unknown: [], strays: [] };
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith("-") || arg === "-") {
      found.strays.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(arg.startsWith("--") ? 2 : 1, eq < 0 ? undefined : eq);
    const next = rawArgs[i + 1];
    if (!names.known.has(name)) {
      found.unknown.push(eq < 0 ? arg : arg.slice(0, eq));
      continue;
    }
    if (!names.booleans.has(name)) {
      if (eq < 0 && next !== undefined) i++; // its value, whatever it looks like, as citty reads it
      continue;
    }
    if (eq >= 0) found.booleans[name] = arg.slice(eq + 1);
    else if (next !== undefined && !next.startsWith("-")) found.booleans[name] = rawArgs[++i]!;
    else found.booleans[name] = true;
  }
  return found;
}
