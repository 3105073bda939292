// docs/reference/configuration.md, drawn from the settings table like --help and in its groups, so
// the reference cannot drift from the code: scripts/config-docs.ts writes it, a test compares.

import { CONFIG_FLAG, DEFAULT_CONFIG_FILE, envName, GROUPS, OTHER_VARIABLES, settings, type Setting } from "./schema.ts";
import { shownDefault } from "./shown-default.ts";

/** The whole page, as committed. */
export function renderConfigReference(): string {
  const out = [
    "# Configuration reference",
    "",
    "<!-- Generated from src/config/schema.ts by `npm run docs:config`; edit the schema, not this file. -->",
    "",
    "Every setting is a command-line flag, a `WEBTALK_*` environment variable and a key of the JSON",
    `config file. Precedence: **flag, then variable, then config file, then default**. \`webtalk --help\``,
    "prints the same settings in the same groups.",
    "",
    `- **The config file** is \`./${DEFAULT_CONFIG_FILE}\` when present, or the file named by \`--${CONFIG_FLAG} FILE\``,
    `  (\`${envName(CONFIG_FLAG)}\`). It is JSON whatever its name, e.g. \`{"public": ":12345", "queue": 500}\`;`,
    "  a syntax error is reported as `webtalk.ini:LINE:COLUMN: …`.",
    "- **File keys are matched exactly.** The only aliases are the original webtalk's " + aliasList() + ".",
    "  An unknown or mis-cased key (`Queue`) is exit 2 naming the key meant; so is the same setting given",
    "  twice (`public` and `Public`).",
    "- **Switches** (" + switches() + ") are true when given alone and otherwise take only",
    "  `true|false|1|0|yes|no`, in flags, variables and the file alike.",
    "- **Durations** are in seconds (fractions allowed); sizes are in bytes; `HOST:PORT` takes `:PORT` for",
    "  all interfaces, `[::1]:PORT` for IPv6, and port 0 for a free port (the startup log states the real one).",
    "- **Errors:** a bad value, an unknown flag or word, an unknown file key or a `--config` file that does not",
    "  exist is one line on stderr naming it, and exit code 2. A `WEBTALK_*` variable that is no setting is a",
    `  warning at start naming the closest one (not fatal). Not settings, and not warned about: ${otherVariables()}.`,
    "",
  ];
  for (const [group, about] of Object.entries(GROUPS)) {
    out.push(`## ${group[0]!.toUpperCase()}${group.slice(1)}`, "", `${about[0]!.toUpperCase()}${about.slice(1)}.`, "");
    out.push("| flag | variable | file key | default | meaning |", "|---|---|---|---|---|");
    for (const setting of settings.filter((s) => s.group === group)) out.push(row(setting));
    out.push("");
  }
  return `${out.join("\n").trimEnd()}\n`;
}

function row(setting: Setting): string {
  const flag = setting.boolean ? `--${setting.flag}` : `--${setting.flag} ${setting.valueHint}`;
  const keys = setting.fileKeys.map(code).join(", ");
  return `| ${code(flag)} | ${code(envName(setting.flag))} | ${keys} | ${code(shownDefault(setting))} | ${cell(setting.description)} |`;
}

function aliasList(): string {
  return settings
    .filter((s) => s.fileAliases?.length)
    .map((s) => `${s.fileAliases!.map(code).join(", ")} for ${code(s.key)}`)
    .join(" and ");
}

function switches(): string {
  return settings
    .filter((s) => s.boolean)
    .map((s) => code(`--${s.flag}`))
    .join(", ");
}

function otherVariables(): string {
  return Object.entries(OTHER_VARIABLES)
    .map(([name, why]) => `${code(name)} (${why})`)
    .join(", ");
}

/** Inline code in a table cell: a `|` would end the cell. */
function code(text: string): string {
  return `\`${text.replaceAll("|", "\\|")}\``;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}
