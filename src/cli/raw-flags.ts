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
  /** Flags that take a value but were given none: last on the line, or followed by another --flag. */
  missing: string[];
}

export interface FlagNames {
  /** Every flag the command takes, without dashes. */
  known: ReadonlySet<string>;
  /** Those that are switches: `--flag` alone means true. */
  booleans: ReadonlySet<string>;
}

/** Every flag in `known` that is not boolean takes a value: `--name=VALUE` or the next argument. */
export function readRawFlags(rawArgs: readonly string[], names: FlagNames): RawFlags {
  const found: RawFlags = { booleans: {}, unknown: [], strays: [], missing: [] };
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
      // `--queue --public x` would take "--public" as the queue and leave "x" a stray: name the real
      // mistake. A value that starts with "--" can still be given as --flag=VALUE.
      if (eq < 0 && (next === undefined || next.startsWith("--"))) found.missing.push(arg);
      else if (eq < 0) i++; // its value, whatever else it looks like, as citty reads it
      continue;
    }
    if (eq >= 0) found.booleans[name] = arg.slice(eq + 1);
    else if (next !== undefined && !next.startsWith("-")) found.booleans[name] = rawArgs[++i]!;
    else found.booleans[name] = true;
  }
  return found;
}
