// --sessions 3 on two --redis nodes (real processes): three webtalk.v2 tabs of one user, whispers and
// shouts flowing from both nodes' control connections. One tab is cut and resumes from its own
// positions (on either node) while the others stay: every tab, counting the cut one's two sockets
// together, must see each source's offsets 1..N exactly once and in order.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { OffsetPage, offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { LOOPBACK, MAIN, spawnServer, type Spawned } from "./process.ts";

const redis = useRedis();

async function rounds(nodes: Spawned[]): Promise<string[]> {
  const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
  const bad: string[] = [];
  try {
    for (let round = 0; round < 6; round++) {
      const user = await newUser(ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      const at = (k: number) => nodes[k % nodes.length]!.publicUrl;
      const pages: OffsetPage[] = [];
      for (let k = 0; k < 3; k++) pages.push(await OffsetPage.login(at(k), user.token));
      let running = true;
      let sent = 0;
      const flows = ctls.map(async (ctl, c) => {
        while (running) {
          sent++;
          await ctl.ok(`[whisper] ${user.id}!w${c}-${sent}`);
          await ctl.ok(`[shout] ${channel}!s${c}-${sent}`);
        }
      });
      await Bun.sleep(100);
      // Cut tab 1 (its position: what it saw), resume it on node `round % 2`.
      const cut = pages[1]!;
      cut.browser.close();
      await cut.browser.closed;
      const positions = ["u", String(channel)].map((s) => `${s}:${cut.offsets.get(s)?.at(-1) ?? 0}`).join(",");
      const epoch = await epochOf(nodes[0]!, user.token);
      await Bun.sleep(50);
      const resumed = new OffsetPage(await Browser.open(at(round), "webtalk.v2"));
      resumed.browser.send(`${user.token}!${epoch}!${positions}`);
      await Bun.sleep(250);
      running = false;
      await Promise.all(flows);
      await ctls[0]!.ok(`[whisper] ${user.id}!end`);
      await Bun.sleep(300);
      const views: [string, (s: string) => number[]][] = [
        ["tab 0", (s) => pages[0]!.offsets.get(s) ?? []],
        ["tab 1 (cut + resumed)", (s) => [...(cut.offsets.get(s) ?? []), ...(resumed.offsets.get(s) ?? [])]],
        ["tab 2", (s) => pages[2]!.offsets.get(s) ?? []],
      ];
      for (const [name, of] of views) {
        for (const source of ["u", String(channel)]) {
          const list = of(source);
          const skips = offsetSkips(list);
          if (list[0] !== 1 || skips.length > 0) bad.push(`round ${round} ${name} source ${source === "u" ? "u" : "channel"}: ${list.length} offsets, first ${list[0]}, skips ${skips.slice(0, 5).join(" ")}`);
        }
      }
      for (const p of [...pages, resumed]) p.browser.close();
    }
  } finally {
    for (const c of ctls) c.close();
  }
  return bad;
}

/** The server's epoch, read from a throwaway webtalk.v2 login of another user. */
async function epochOf(node: Spawned, _token: string): Promise<string> {
  const ctl = await ControlClient.connect(node.privatePort);
  const other = await newUser(ctl);
  const b = await Browser.open(node.publicUrl, "webtalk.v2");
  b.send(other.token);
  const line = await b.messages.next("#epoch");
  b.close();
  ctl.close();
  return line.slice(7);
}

describe("--sessions 3: a cut webtalk.v2 tab resumes from its own positions while the others stay", () => {
  test("in memory", async () => {
    const node = await spawnServer(["bun", MAIN, ...LOOPBACK, "--sessions", "3"]);
    try {
      expect(await rounds([node])).toEqual([]);
    } finally {
      await node.stop();
    }
  }, 60_000);

  test.skipIf(!haveRedis)("--redis, two nodes", async () => {
    const nodes = await spawnCluster(redis, uniquePrefix("resume"), 2, ["--sessions", "3"]);
    try {
      expect(await rounds(nodes)).toEqual([]);
    } finally {
      for (const n of nodes) await n.stop();
    }
  }, 60_000);
});
