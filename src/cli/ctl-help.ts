// `webtalk ctl --help` and `webtalk ctl COMMAND --help`, drawn like the server's --help (help.ts):
// wrapped to the terminal, at most 100 plain columns into a pipe or a file, colour only for a terminal
// that wants it. citty's renderer padded every line to 189 columns and coloured pipes.

import type { ArgsDef } from "citty";
import { wrap } from "../util/wrap.ts";
import { table, type HelpStyle, type Row } from "./help.ts";

/** What the help needs of a ctl command: its name, what it does, and its arguments and flags. */
export interface CtlCommandHelp {
  name: string;
  description: string;
  args: ArgsDef;
}

export function renderCtlHelp(ctl: CtlCommandHelp, commands: CtlCommandHelp[], { width, color }: HelpStyle): string {
  const paint = painter(color);
  const bold = (text: string) => (color ? `\x1b[1m${text}\x1b[22m` : text);
  const out: string[] = [...wrap(`webtalk ctl: ${ctl.description}.`, width), ""];
  out.push(bold("Usage"), `  ${paint("webtalk ctl [flags] COMMAND [ARGUMENTS]")}`, "");
  const rows = commands.map((c): Row => ({ label: c.name, text: c.description }));
  out.push(bold("Commands"), ...table(rows, column(rows, width), width, paint), "");
  const flags = flagRows(ctl.args);
  out.push(bold("Flags, before or after the command"), ...table(flags, column(flags, width), width, paint), "");
  out.push(...wrap("Exit 0 on [ok], 1 on [error] or no server, 2 on a usage error. webtalk ctl COMMAND --help shows a command's arguments.", width));
  return `${out.join("\n")}\n`;
}

export function renderCtlCommandHelp(command: CtlCommandHelp, { width, color }: HelpStyle): string {
  const paint = painter(color);
  const bold = (text: string) => (color ? `\x1b[1m${text}\x1b[22m` : text);
  const positionals = Object.entries(command.args).filter(([, arg]) => arg.type === "positional");
  const usage = `webtalk ctl ${command.name} [flags]${positionals.map(([name]) => ` ${name.toUpperCase()}`).join("")}`;
  const out: string[] = [...wrap(`webtalk ctl ${command.name}: ${command.description}.`, width), ""];
  out.push(bold("Usage"), `  ${paint(usage)}`, "");
  if (positionals.length > 0) {
    const rows = positionals.map(([name, arg]): Row => ({ label: name.toUpperCase(), text: arg.description ?? "" }));
    out.push(bold("Arguments"), ...table(rows, column(rows, width), width, paint), "");
  }
  const flags = flagRows(command.args);
  out.push(bold("Flags"), ...table(flags, column(flags, width), width, paint));
  return `${out.join("\n")}\n`;
}

function flagRows(args: ArgsDef): Row[] {
  return Object.entries(args)
    .filter(([, arg]) => arg.type !== "positional")
    .map(([name, arg]) => ({
      label: arg.type === "boolean" ? `--${name}` : `--${name} ${"valueHint" in arg && arg.valueHint ? arg.valueHint : "VALUE"}`,
      text: arg.description ?? "",
    }));
}

/** Wide enough for the labels, at most a third of the page: a longer label puts its text below it. */
function column(rows: Row[], width: number): number {
  return Math.min(Math.max(...rows.map((r) => r.label.length)) + 2, Math.floor(width / 3));
}

function painter(color: boolean): (text: string) => string {
  return (text) => (color ? `\x1b[36m${text}\x1b[39m` : text);
}
