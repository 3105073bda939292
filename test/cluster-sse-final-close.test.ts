// Final closes across a cluster: an SSE stream on node A is kicked, killed or replaced through node B
// (two nodes on one redis-server). The stream must get its `close` event with the code, then end.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ControlClient, newUser, within } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import type { Spawned } from "./process.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

const redis = useRedis();
let nodes: Spawned[] = [];
let ctlB: ControlClient;

beforeAll(async () => {
  if (!haveRedis) return;
  nodes = await spawnCluster(redis, uniquePrefix("sse-final"), 2);
  ctlB = await ControlClient.connect(nodes[1]!.privatePort);
});

afterAll(async () => {
  ctlB?.close();
  for (const node of nodes) await node.stop("SIGKILL");
});

async function onlineOnB(user: number, want: string): Promise<void> {
  await within(
    (async () => {
      while ((await ctlB.ok(`[online] ${user}`)) !== want) await Bun.sleep(10);
    })(),
    `[online] ${user} to be ${want} on node B`,
  );
}

describe.skipIf(!haveRedis)("SSE final closes from the other node", () => {
  for (const action of ["kick", "kill", "replace"] as const) {
    test(`${action} through node B: the stream on node A gets its close event, then ends`, async () => {
      const [a, b] = nodes as [Spawned, Spawned];
      const user = await newUser(ctlB);
      const stream = await SseClient.open(eventsUrl(a.publicUrl, user.token));
      await stream.events.next("the epoch");
      await onlineOnB(user.id, "1");
      let other: SseClient | undefined;
      if (action === "kick") expect(await ctlB.ok(`[kick] ${user.id}`)).toBe("user kicked");
      if (action === "kill") await ctlB.call(`[killuser] ${user.id}`);
      if (action === "replace") {
        other = await SseClient.open(eventsUrl(b.publicUrl, user.token));
        await other.events.next("the newer login's epoch");
      }
      const close = await stream.next("the close event");
      const expected = { kick: "4005 kicked", kill: "4004 user killed", replace: "4002 replaced by another login" }[action];
      expect({ type: close.type, data: close.data }).toEqual({ type: "close", data: expected });
      await within(stream.ended, "the stream to end");
      if (action === "replace") {
        // The newer login is the one left.
        await ctlB.ok(`[whisper] ${user.id}!to the newer`);
        expect((await other!.next("the whisper")).data).toBe("to the newer");
        other!.cut();
      } else if (action === "kick") await onlineOnB(user.id, "0");
    }, 30_000);
  }
});
