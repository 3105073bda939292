// The benchmark itself must never rot: run it at tiny sizes against webtalk and the limit server, and
// check only that it completes, loses nothing and produces well-formed figures. No performance claims.

import { expect, test } from "bun:test";
import { renderPlots } from "../scripts/bench/plot.ts";
import { smoke } from "../scripts/bench/presets.ts";
import { renderReport } from "../scripts/bench/report.ts";
import { LIMIT, runBench, WEBTALK } from "../scripts/bench/run.ts";
import { runToExit } from "./process.ts";

test(
  "bench --smoke runs every scenario against webtalk and the limit, losing nothing",
  async () => {
    // Not pinned: pinning would move this test runner onto one core for the rest of the suite.
    const results = await runBench({ ...smoke(), pin: false, targets: [WEBTALK, LIMIT], log: () => {} });
    for (const server of ["webtalk", "limit"]) {
      const rounds = results.results[server]!;
      expect(rounds).toHaveLength(1);
      const figures = rounds[0]!;
      for (const key of ["fanout.20.perSec", "rate.20.p99Ms", "whisper.perSec", "store.perSec", "serial.perSec", "connections.loginsPerSec"]) {
        expect(figures[key]).toBeGreaterThan(0);
      }
      for (const [key, value] of Object.entries(figures)) {
        expect(Number.isFinite(value), `${server} ${key} = ${value}`).toBe(true);
        if (key.endsWith(".lost") || key.endsWith(".errors") || key.endsWith(".disorder")) expect(value, `${server} ${key}`).toBe(0);
      }
      expect(figures["connections.browsers"]).toBe(smoke().connections);
      expect(figures["fanout.20.delivered"]).toBe(smoke().deliveries);
    }
    const report = renderReport(results);
    expect(report).toContain("| fan-out 20: delivered msg/s |");
    for (const svg of Object.values(renderPlots(results))) expect(svg).toStartWith("<svg");
  },
  60_000,
);

// bench:modes carries issue 15's cluster measures: at smoke sizes every table must come out, nothing lost.
test.skipIf(!Bun.which("redis-server") || !Bun.which("redis-benchmark"))(
  "bench:modes --smoke reports the pipelined bursts, Redis per message, the idle node and the yardstick, losing nothing",
  async () => {
    const { code, stdout, stderr } = await runToExit([process.execPath, "scripts/bench-modes.ts", "--smoke"], { timeoutMs: 90_000 });
    expect(code, stderr).toBe(0);
    for (const mode of ["plain", "cluster, 2 nodes"]) {
      for (const kind of ["shout", "whisper"]) {
        const row = stdout.split("\n").find((line) => line.startsWith(`| ${mode} | [${kind}] |`));
        expect(row, `${mode} ${kind}`).toBeDefined();
        const [, , , perSec, , lost, errors] = row!.split("|").map((cell) => cell.trim());
        expect(Number(perSec!.split(" ")[0]!.replaceAll(",", ""))).toBeGreaterThan(0);
        expect(`${lost} lost, ${errors} errors`).toBe("0 lost, 0 errors");
      }
    }
    expect(stdout).toMatch(/^\| EVALSHA \| [\d.]+ \| [\d.]+ \|$/m);
    expect(stdout).toMatch(/^\| \*\*total\*\* \| [\d.]+ \| [\d.]+ \|$/m);
    expect(stdout).toContain("C as % of A");
    expect(stdout).toMatch(/Yardstick: `redis-benchmark -c 1 -P 1000 PUBLISH` on the same Redis, [\d,]+\/s/);
  },
  120_000,
);
