// The one line an exit 2 prints for a command line the server cannot take, naming the word and,
// when one is near, what was probably meant: `webtalk version` is `--version`, not a server on defaults.

import type { RawFlags } from "./raw-flags.ts";
import { didYouMean } from "../util/suggest.ts";

/** What the server's command line may hold besides its settings' flags. */
const BUILTIN_FLAGS = ["help", "version"];
/** Commands: the only one, ctl, is recognised in main.ts when it comes first. */
const COMMANDS = ["ctl"];
/** Words people type out of habit from other servers: the server runs with no command at all. */
const SERVE_WORDS = new Set(["serve", "server", "start", "run", "listen"]);

/** The first problem in the command line, or undefined when every word is accounted for. */
export function argumentError(raw: RawFlags, flags: readonly string[]): string | undefined {
  const names = [...flags, ...BUILTIN_FLAGS];
  const flag = raw.unknown[0];
  if (flag !== undefined) return `unknown flag ${flag}${hint(flag.replace(/^--?/, ""), names, [])} (see --help)`;
  const empty = raw.missing[0];
  if (empty !== undefined) return `${empty} needs a value: ${empty} VALUE, or ${empty}=VALUE for one that starts with -- (see --help)`;
  const stray = raw.strays[0];
  if (stray === undefined) return undefined;
  if (COMMANDS.includes(stray)) return `"${stray}" must come first: webtalk ${stray} … (see webtalk ${stray} --help)`;
  if (SERVE_WORDS.has(stray.toLowerCase())) return `unknown command "${stray}": webtalk runs the server with no command (webtalk [flags]; see --help)`;
  if (/^[\w.-]*:\d+$|^\[[\w:.]+\]:\d+$/.test(stray)) return `unexpected argument "${stray}" — did you mean --public ${stray}? (see --help)`;
  if (/^[a-z][\w-]*$/i.test(stray)) return `unknown command "${stray}"${hint(stray, names, COMMANDS)} (see --help)`;
  return `unexpected argument "${stray}" (flags are --name VALUE; see --help)`;
}

/** ` — did you mean --x?` (or a command) when one is near enough, else "". */
function hint(word: string, flags: readonly string[], commands: readonly string[]): string {
  const shown = new Map<string, string>();
  for (const name of flags) shown.set(name, `--${name}`);
  for (const name of commands) shown.set(name, name);
  return didYouMean(word, shown.keys(), (name) => shown.get(name)!);
}
