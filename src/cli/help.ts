// `webtalk --help`, drawn from the settings table: grouped, wrapped to the terminal, coloured only
// for a terminal that wants colour. citty's own renderer prints one 200-column line a flag, in one
// list, with colour codes even into a pipe or a file.

import pkg from "../../package.json" with { type: "json" };
import { CONFIG_FLAG, DEFAULT_CONFIG_FILE, envName, GROUPS, settings, type Setting } from "../config/schema.ts";
import { shownDefault } from "../config/shown-default.ts";
import { wrap } from "../util/wrap.ts";

export interface HelpStyle {
  /** Columns to wrap to. */
  width: number;
  color: boolean;
}

/** The style for this process's stdout: the terminal's width and colour, or 100 plain columns. */
export function helpStyle(stdout: { isTTY?: boolean; columns?: number }, env: Record<string, string | undefined>): HelpStyle {
  const terminal = stdout.isTTY === true;
  const asked = Number(env.COLUMNS);
  // A terminal is wrapped to its width, but past 120 columns lines are hard to follow; a pipe or a
  // file gets at most 100, narrower if COLUMNS says so.
  const width = terminal && stdout.columns ? Math.min(stdout.columns, 120) : Math.min(100, asked > 0 ? asked : 100);
  const color = terminal && !env.NO_COLOR && env.TERM !== "dumb";
  return { width: Math.max(40, width), color };
}

export function renderHelp({ width, color }: HelpStyle): string {
  const bold = (text: string) => (color ? `\x1b[1m${text}\x1b[22m` : text);
  const cyan = (text: string) => (color ? `\x1b[36m${text}\x1b[39m` : text);
  const sections: [title: string, rows: Row[]][] = [
    [
      "General",
      [
        { label: `--${CONFIG_FLAG} FILE`, text: "JSON config file", note: `env ${envName(CONFIG_FLAG)}, default ./${DEFAULT_CONFIG_FILE} when present` },
        { label: "-h, --help", text: "show this help" },
        { label: "-v, --version", text: "print the version, the commit and the Bun version" },
      ],
    ],
  ];
  for (const [group, about] of Object.entries(GROUPS)) {
    sections.push([`${group[0]!.toUpperCase()}${group.slice(1)}: ${about}`, settings.filter((s) => s.group === group).map(settingRow)]);
  }
  // One column for every section, so the descriptions line up down the whole page; the few labels
  // wider than it put their text on the next line.
  const labels = sections.flatMap(([, rows]) => rows.map((r) => r.label.length));
  const column = Math.min(Math.max(...labels.filter((n) => n <= 28)) + 2, Math.floor(width / 3));

  const out: string[] = [];
  const paragraph = (text: string) => out.push(...wrap(text, width), "");
  paragraph(`webtalk ${pkg.version}: ${pkg.description}.`);
  out.push(bold("Usage"));
  out.push(...table([{ label: "webtalk [flags]", text: "run the server" }], 24, width, cyan));
  out.push(...table([{ label: "webtalk ctl COMMAND …", text: "talk to a running server; webtalk ctl --help lists its commands" }], 24, width, cyan), "");
  paragraph(
    `Every setting is a flag, a WEBTALK_* variable and a key of the JSON config file (./${DEFAULT_CONFIG_FILE} or --config): ` +
      "a flag beats the variable, which beats the file, which beats the default. Switches are true alone, or take " +
      "true|false|1|0|yes|no. A bad value, an unknown flag or an unknown file key is exit 2. " +
      "All of them, with their file keys: docs/reference/configuration.md.",
  );
  for (const [title, rows] of sections) out.push(...wrap(title, width).map(bold), ...table(rows, column, width, cyan), "");
  return `${out.join("\n").trimEnd()}\n`;
}

export interface Row {
  label: string;
  text: string;
  /** Where else it is set and its default: a line of its own, the thing to look up at a glance. */
  note?: string;
}

function settingRow(setting: Setting): Row {
  const label = setting.boolean ? `--${setting.flag}` : `--${setting.flag} ${setting.valueHint}`;
  return { label, text: setting.description, note: `env ${envName(setting.flag)}, default ${shownDefault(setting)}` };
}

/** Labels in a column `column` wide; a label too wide for it gets its text on the lines below. */
export function table(rows: Row[], column: number, width: number, paint: (text: string) => string): string[] {
  const lines: string[] = [];
  const indent = " ".repeat(2 + column);
  for (const { label, text, note } of rows) {
    const body = [...wrap(text, width - indent.length), ...(note ? wrap(note, width - indent.length) : [])];
    if (label.length + 2 <= column) lines.push(`  ${paint(label)}${" ".repeat(column - label.length)}${body.shift() ?? ""}`);
    else lines.push(`  ${paint(label)}`);
    for (const more of body) lines.push(`${indent}${more}`);
  }
  return lines;
}
