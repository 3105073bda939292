// Issue 15's measures as Markdown tables: rounds of `clusterRound` results in, medians with min–max out.

import { fmt, med, range, sum } from "./format.ts";
import type { Figures } from "./scenarios.ts";

export interface ClusterReportInput {
  rounds: Record<string, Figures>[];
  perNode: number;
  burst: number;
  idleUsers: number;
  idleWhispers: number;
  yardstick: number;
}

export function renderCluster(input: ClusterReportInput): string {
  const by = (key: string) => input.rounds.map((r) => r[key]).filter((f): f is Figures => f !== undefined);
  return [...pipelinedTable(input, by), "", ...commandsTable(by), "", ...idleTable(input, by)].join("\n");
}

type By = (key: string) => Figures[];

function pipelinedTable(input: ClusterReportInput, by: By): string[] {
  const yardstick = med(by("yardstick"), "perSec");
  const lines = [
    `Pipelined on one control connection: ${input.burst.toLocaleString("en")} commands written without waiting, ` +
      `rate from the first write to the last reply; ${input.perNode} browsers per node, all in channel 1; ` +
      "whispers round-robin over them; lost = deliveries owed minus received. " +
      `Yardstick: \`redis-benchmark -c 1 -P 1000 PUBLISH\` on the same Redis, ${fmt(yardstick, 0)}/s ${range(by("yardstick"), "perSec", 0)}.`,
    "",
    "| mode | command | messages/s | share of Redis PUBLISH -P 1000 | lost | errors | Redis commands / message | Redis CPU µs / message | Redis bytes in / out per message |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const mode of ["plain", "cluster, 2 nodes"]) {
    for (const kind of ["shout", "whisper"]) {
      const rows = by(`pipelined.${mode}.${kind}`);
      if (rows.length === 0) continue;
      const clustered = mode !== "plain";
      lines.push(
        `| ${mode} | [${kind}] | ${fmt(med(rows, "perSec"), 0)} ${range(rows, "perSec", 0)} | ${fmt(med(rows, "perSec") / yardstick, 3)} | ` +
          `${sum(rows, "lost")} | ${sum(rows, "errors")} | ${clustered ? fmt(med(rows, "cmd.total"), 2) : ""} | ` +
          `${clustered ? fmt(med(rows, "redisCpuUs"), 1) : ""} | ${clustered ? `${fmt(med(rows, "redisInBytes"), 0)} / ${fmt(med(rows, "redisOutBytes"), 0)}` : ""} |`,
      );
    }
  }
  return lines;
}

// Every Redis command seen during either burst, per shout and per whisper (INFO commandstats).
function commandsTable(by: By): string[] {
  const shouts = by("pipelined.cluster, 2 nodes.shout");
  const whispers = by("pipelined.cluster, 2 nodes.whisper");
  if (shouts.length === 0) return [];
  const names = new Set<string>();
  for (const row of [...shouts, ...whispers]) for (const key of Object.keys(row)) if (key.startsWith("cmd.") && key !== "cmd.total") names.add(key);
  const lines = [
    "Redis commands per message on the 2-node cluster (`INFO commandstats` before and after each burst, divided by the messages; " +
      "a script's inner commands count too; rows under 0.01 per message, the nodes' background work, are left out but counted in the total):",
    "",
    "| Redis command | per [shout] | per [whisper] |",
    "|---|--:|--:|",
  ];
  for (const key of [...names].sort()) {
    // The nodes' background work (leases, presence) shows as a few calls over a whole burst: not per message.
    if (!(med(shouts, key) >= 0.01) && !(med(whispers, key) >= 0.01)) continue;
    lines.push(`| ${key.slice(4).toUpperCase()} | ${fmt(med(shouts, key), 2)} | ${fmt(med(whispers, key), 2)} |`);
  }
  lines.push(`| **total** | ${fmt(med(shouts, "cmd.total"), 2)} | ${fmt(med(whispers, "cmd.total"), 2)} |`);
  return lines;
}

function idleTable(input: ClusterReportInput, by: By): string[] {
  const rows = by("idle");
  if (rows.length === 0) return [];
  return [
    `A node that hosts nothing for the traffic: three nodes on one Redis; ${input.idleUsers.toLocaleString("en")} browsers, all on node B; ` +
      `the backend on node A sends ${input.idleWhispers.toLocaleString("en")} whispers to them (random users, pipelined); node C has no browser ` +
      "and no backend. CPU seconds from /proc/PID/stat (utime + stime) over the burst.",
    "",
    "| whispers/s | lost | CPU s: A (sending) | B (hosting) | C (hosts nothing) | C as % of A | C as % of B | C µs per whisper | Redis CPU µs / whisper (3 nodes) | Redis bytes out / whisper |",
    "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    `| ${fmt(med(rows, "perSec"), 0)} ${range(rows, "perSec", 0)} | ${sum(rows, "lost")} | ${fmt(med(rows, "cpuA"), 2)} | ${fmt(med(rows, "cpuB"), 2)} | ` +
      `${fmt(med(rows, "cpuC"), 2)} | ${fmt(med(rows, "cPctOfA"), 1)} % ${range(rows, "cPctOfA", 1)} | ${fmt(med(rows, "cPctOfB"), 1)} % | ${fmt(med(rows, "cUsPerWhisper"), 2)} | ` +
      `${fmt(med(rows, "redisCpuUs"), 1)} | ${fmt(med(rows, "redisOutBytes"), 0)} |`,
  ];
}
