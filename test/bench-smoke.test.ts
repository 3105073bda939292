// The benchmark itself must never rot: run it at tiny sizes against webtalk and the limit server, and
// check only that it completes, loses nothing and produces well-formed figures. No performance claims.

import { expect, test } from "bun:test";
import { renderPlots } from "../scripts/bench/plot.ts";
import { smoke } from "../scripts/bench/presets.ts";
import { renderReport } from "../scripts/bench/report.ts";
import { LIMIT, runBench, WEBTALK } from "../scripts/bench/run.ts";

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
