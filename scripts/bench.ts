// `bun run bench`: webtalk against the limit (and Redis), alternating rounds; see docs/benchmarks.md.

import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { renderPlots } from "./bench/plot.ts";
import { renderReport, updateDocs } from "./bench/report.ts";
import { full, quick, smoke } from "./bench/presets.ts";
import { LIMIT, runBench, WEBTALK, type BenchOptions, type TargetSpec } from "./bench/run.ts";

const HELP = `npm run bench -- [flags]

  --quick                 fewer rounds and smaller sizes (about 3 minutes)
  --smoke                 tiny sizes, one round (seconds): proves the benchmark runs
  --rounds N              alternating rounds per server (default 7)
  --sizes 1000,5000,10000 subscribers for the fan-out scenarios
  --connections N         idle browsers for the connections scenario (default 19000; 0 skips)
  --workers N             load-generator processes (default 4)
  --no-redis              skip Redis even when installed
  --no-pin                do not pin the server and the load generator to different cores
  --out DIR               write results.json, results.md and SVG plots there (default docs/bench)
  --update-docs           also rewrite the table in docs/benchmarks.md
  --profile DIR           run the servers under bun --cpu-prof and keep the profiles in DIR
  --public HOST:PORT --private HOST:PORT --pid PID
                          measure a server that is already running (alone, no limit)
`;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean" },
    smoke: { type: "boolean" },
    rounds: { type: "string" },
    sizes: { type: "string" },
    connections: { type: "string" },
    workers: { type: "string" },
    "no-redis": { type: "boolean" },
    "no-pin": { type: "boolean" },
    out: { type: "string" },
    "update-docs": { type: "boolean" },
    profile: { type: "string" },
    public: { type: "string" },
    private: { type: "string" },
    pid: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const ROOT = resolve(import.meta.dir, "..");
const preset = values.smoke ? smoke() : values.quick ? quick() : full();
const options: BenchOptions = {
  ...preset,
  rounds: int(values.rounds, preset.rounds),
  sizes: values.sizes ? values.sizes.split(",").map((s) => int(s, 0)) : preset.sizes,
  connections: int(values.connections, preset.connections),
  workers: int(values.workers, preset.workers),
  redis: !values["no-redis"] && preset.redis,
  pin: !values["no-pin"],
  targets: targets(),
  profileDir: values.profile ? resolve(values.profile) : undefined,
  log: (line) => process.stderr.write(`${line}\n`),
};

const results = await runBench(options);
const report = renderReport(results);
process.stdout.write(`${report}\n`);
const out = resolve(ROOT, values.out ?? "docs/bench");
if (!values.smoke || values.out) {
  mkdirSync(out, { recursive: true });
  writeFileSync(resolve(out, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(resolve(out, "results.md"), `${report}\n`);
  for (const [name, svg] of Object.entries(renderPlots(results))) writeFileSync(resolve(out, name), svg);
  process.stderr.write(`results in ${out} (${results.seconds.toFixed(0)} s)\n`);
}
if (values["update-docs"]) updateDocs(resolve(ROOT, "docs/benchmarks.md"), report);
process.exit(0);

function targets(): TargetSpec[] {
  if (!values.public && !values.private) return [WEBTALK, LIMIT];
  if (!values.public || !values.private || !values.pid) {
    process.stderr.write("bench: --public, --private and --pid go together\n");
    process.exit(2);
  }
  const [privateHost, privatePort] = hostPort(values.private);
  const url = values.public.includes("://") ? values.public : `ws://${values.public}/webtalk`;
  return [{ name: "server", external: { name: "server", pid: int(values.pid, 0), publicUrl: url, privateHost, privatePort } }];
}

function hostPort(text: string): [string, number] {
  const colon = text.lastIndexOf(":");
  return [text.slice(0, colon), int(text.slice(colon + 1), 0)];
}

function int(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`bench: not a count: ${text}\n`);
    process.exit(2);
  }
  return n;
}
