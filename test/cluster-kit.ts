// Cluster nodes as webtalk processes on one redis-server, and webtalk.v2 pages that record the offsets
// they are sent: what the cluster-order tests compare.

import { expect } from "bun:test";
import { Browser, type ControlClient } from "./helpers.ts";
import { MAIN, LOOPBACK, spawnServer, type Spawned } from "./process.ts";
import type { TestRedis } from "./redis-server.ts";

/** Starts one server process on `redis` under `prefix`, its node lease `lease` seconds. */
export function spawnNode(redis: Pick<TestRedis, "url">, prefix: string, lease: number, extra: string[] = []): Promise<Spawned> {
  return spawnServer(["bun", MAIN, ...LOOPBACK, "--redis", redis.url, "--redis-prefix", prefix, "--lease", String(lease), ...extra]);
}

/** Starts `count` server processes, one after another, on `redis` under one key prefix (lease 2 s). */
export async function spawnCluster(redis: Pick<TestRedis, "url">, prefix: string, count: number, extra: string[] = []): Promise<Spawned[]> {
  const nodes: Spawned[] = [];
  for (let i = 0; i < count; i++) nodes.push(await spawnNode(redis, prefix, 2, extra));
  return nodes;
}

/** A webtalk.v2 page that records, per source (`u` or a channel ID), every offset and text in arrival order. */
export class OffsetPage {
  readonly offsets = new Map<string, number[]>();
  readonly texts = new Map<string, string[]>();
  constructor(readonly browser: Browser) {
    browser.ws.addEventListener("message", (event) => {
      const match = /^(u|\d+):(\d+)!(.*)$/s.exec(String(event.data));
      if (!match) return;
      append(this.offsets, match[1]!, Number(match[2]));
      append(this.texts, match[1]!, match[3]!);
    });
  }

  /** Opens a page on `url`, logs it in with `token` (no positions) and checks it is told the epoch. */
  static async login(url: string, token: string): Promise<OffsetPage> {
    const page = new OffsetPage(await Browser.open(url, "webtalk.v2"));
    page.browser.send(token);
    expect(await page.browser.messages.next("#epoch")).toStartWith("#epoch ");
    return page;
  }
}

/** Ends what a cluster test opened: its pages, its control connections, then its nodes (SIGKILL). */
export async function endCluster(parts: { pages: OffsetPage[]; ctls: ControlClient[]; nodes: Spawned[] }): Promise<void> {
  for (const page of parts.pages) page.browser.close();
  for (const ctl of parts.ctls) ctl.close();
  for (const node of parts.nodes) await node.stop("SIGKILL");
}

/** Where a list of offsets does not rise by exactly one, as `previous->offset`. */
export function offsetSkips(offsets: number[]): string[] {
  const out: string[] = [];
  for (let i = 1; i < offsets.length; i++) if (offsets[i] !== offsets[i - 1]! + 1) out.push(`${offsets[i - 1]}->${offsets[i]}`);
  return out;
}

function append<T>(map: Map<string, T[]>, source: string, value: T): void {
  const list = map.get(source) ?? [];
  list.push(value);
  map.set(source, list);
}
