// Boolean flags as the operator wrote them. citty reads `--upstream false` as `--upstream` (true)
// followed by a stray word "false": the opposite of what was meant. Read from the raw arguments
// instead, a boolean flag takes the next word as its value unless that word is another flag.

export interface RawFlags {
  /** Each boolean flag given, by name: its value as written, or true for a bare `--flag`. */
  booleans: Record<string, string | true>;
  /** Arguments that belong to no flag (webtalk takes none): worth an exit 2, not silence. */
  strays: string[];
}

/** `booleans` names the boolean flags; every other `--flag` without `=` takes the next argument. */
export function readRawFlags(rawArgs: readonly string[], booleans: ReadonlySet<string>): RawFlags {
  const found: RawFlags = { booleans: {}, strays: [] };
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith("-")) {
      found.strays.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(arg.startsWith("--") ? 2 : 1, eq < 0 ? undefined : eq);
    const next = rawArgs[i + 1];
    if (!booleans.has(name)) {
      if (eq < 0 && next !== undefined) i++; // its value, whatever it looks like, as citty reads it
      continue;
    }
    if (eq >= 0) found.booleans[name] = arg.slice(eq + 1);
    else if (next !== undefined && !next.startsWith("-")) found.booleans[name] = rawArgs[++i]!;
    else found.booleans[name] = true;
  }
  return found;
}
