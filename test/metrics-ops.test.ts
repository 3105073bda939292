// Issue 16 (ops): /metrics has process_max_fds beside process_open_fds, latency histograms (control
// commands by name, --data commits) and browser closes by close code; deploy/grafana-webtalk.json
// only charts metrics a live scrape has. A real server with a data file, real traffic, one scrape.

import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, newUser, within } from "./helpers.ts";
import { MAIN, LOOPBACK, ROOT, spawnServer } from "./process.ts";

/** Every sample line as `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, m[2] === "+Inf" ? Infinity : Number(m[2]));
  }
  return out;
}

test("histograms, fds and closes by code after real traffic; the Grafana dashboard's metrics all exist", async () => {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-metrics-"));
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--data", join(dir, "webtalk.db")]);
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const user = await newUser(ctl);
    expect(await ctl.call(`[whisper] ${user.id}!held`)).toStartWith("[ok]");
    const wrong = await Browser.open(server.publicUrl);
    wrong.send(`${user.id}!not-the-salt`);
    expect((await wrong.closedWithin()).code).toBe(4001);
    ctl.close();
    const text = await (await within(fetch(`${server.adminUrl}/metrics`), "/metrics")).text();
    const s = samples(text);

    expect(text).toContain("# TYPE process_max_fds gauge");
    expect(s.get("process_max_fds")!).toBeGreaterThan(0);
    expect(s.get("process_max_fds")!).toBeGreaterThanOrEqual(s.get("process_open_fds")!);

    expect(text).toContain("# TYPE webtalk_control_command_duration_seconds histogram");
    const count = s.get('webtalk_control_command_duration_seconds_count{command="newuser"}')!;
    expect(count).toBe(1);
    expect(s.get('webtalk_control_command_duration_seconds_bucket{command="newuser",le="+Inf"}')).toBe(count);
    expect(s.get('webtalk_control_command_duration_seconds_sum{command="newuser"}')!).toBeGreaterThan(0);
    const buckets = [...s].filter(([k]) => k.startsWith('webtalk_control_command_duration_seconds_bucket{command="whisper"'));
    expect(buckets.length).toBeGreaterThan(2);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]![1]).toBeGreaterThanOrEqual(buckets[i - 1]![1]);

    // A new user and a held whisper are two write transactions on the data file at least.
    expect(text).toContain("# TYPE webtalk_data_commit_duration_seconds histogram");
    expect(s.get("webtalk_data_commit_duration_seconds_count")!).toBeGreaterThanOrEqual(2);

    expect(s.get('webtalk_browser_closes_total{code="4001"}')).toBe(1);
    expect(s.get('webtalk_browser_closes_total{code="other"}')).toBe(0);

    const dashboard = JSON.parse(readFileSync(join(ROOT, "deploy/grafana-webtalk.json"), "utf8")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets) {
        for (const [name] of expr.matchAll(/\b(?:webtalk|process)_[a-z_]+/g)) used.add(name.replace(/_(bucket|sum|count)$/, ""));
      }
    }
    const missing = [...used].filter((name) => !families.has(name));
    console.log(`dashboard uses ${used.size} metrics; missing from the scrape: ${JSON.stringify(missing)}`);
    expect(missing).toEqual([]);
    expect(used.has("webtalk_control_command_duration_seconds")).toBe(true);
  } finally {
    expect(await server.stop()).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
