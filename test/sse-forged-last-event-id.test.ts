// Forged Last-Event-IDs on the SSE endpoint: another user's id (its `u` whispers and a channel only it
// is in), a channel the user left, position 0 of a channel the user is not in, another epoch, and
// channel 1 from before the user existed. No message of another user, of a channel the user is not in,
// or from before the user joined may reach the stream. In memory and with --redis (a cluster node).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, newUser, startTestServer, type User } from "./helpers.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { eventsUrl, SseClient, type SseEvent } from "./sse-client.ts";

const redis = useRedis();

for (const mode of ["memory", "redis"] as const) {
  describe.skipIf(mode === "redis" && !haveRedis)(`forged Last-Event-ID (${mode})`, () => {
    let server: Webtalk;
    let ctl: ControlClient;
    let bob: User;
    let bobChannel: string;
    let shared: string;
    let bobId: string;

    beforeAll(async () => {
      server = await startTestServer(mode === "redis" ? { redis: redis.url, redisPrefix: uniquePrefix("forged") } : {});
      ctl = await ControlClient.connect(server.private.port);
      // Channel 1 before anyone below exists: never theirs to read.
      for (let i = 0; i < 3; i++) await ctl.ok(`[shout] 1!secret-global-${i}`);
      await Bun.sleep(2); // IDs are creation times: the users are born after those shouts
      bob = await newUser(ctl);
      bobChannel = await ctl.ok("[newchannel]");
      shared = await ctl.ok("[newchannel]");
      await ctl.ok(`[join] ${bobChannel}!${bob.id}`);
      await ctl.ok(`[join] ${shared}!${bob.id}`);
      const stream = await SseClient.open(eventsUrl(server.publicUrl, bob.token));
      for (let i = 1; i <= 3; i++) {
        await ctl.ok(`[whisper] ${bob.id}!secret-whisper-${i}`);
        await ctl.ok(`[shout] ${bobChannel}!secret-channel-${i}`);
        await ctl.ok(`[shout] ${shared}!secret-shared-${i}`);
      }
      for (let n = 0; n < 9; n++) await stream.next("bob's messages");
      bobId = stream.lastEventId;
      stream.cut();
    });

    afterAll(async () => {
      ctl.close();
      await server.stop();
    });

    /** What a stream logged in as `user` with `lastEventId` gets before a marker whispered to it. */
    async function resumeAs(user: User, lastEventId: string): Promise<SseEvent[]> {
      const stream = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": lastEventId });
      expect(stream.response.status).toBe(200);
      await stream.events.next("the epoch");
      await ctl.ok(`[whisper] ${user.id}!marker`);
      const got: SseEvent[] = [];
      for (let e = await stream.next("the marker", true); e.data !== "marker"; e = await stream.next("the marker", true)) got.push(e);
      stream.cut();
      return got;
    }

    const secrets = (events: SseEvent[]) => events.filter((e) => e.type === "message" && e.data.startsWith("secret"));

    test("alice resuming from bob's own id gets none of bob's whispers or channel", async () => {
      const alice = await newUser(ctl);
      expect(bobId).toContain(`${bobChannel}:3`);
      expect(secrets(await resumeAs(alice, bobId))).toEqual([]);
    });

    test("alice naming position 0 of bob's channel, of channel 1 and of her u stream gets nothing of theirs", async () => {
      const alice = await newUser(ctl);
      const epoch = bobId.slice(0, bobId.indexOf("!"));
      expect(secrets(await resumeAs(alice, `${epoch}!u:0,1:0,${bobChannel}:0,${shared}:0`))).toEqual([]);
    });

    test("a member who joined late naming position 0 gets a gap, not what was sent before the join", async () => {
      const carol = await newUser(ctl);
      await ctl.ok(`[join] ${shared}!${carol.id}`);
      await ctl.ok(`[shout] ${shared}!after-join`);
      const epoch = bobId.slice(0, bobId.indexOf("!"));
      const got = await resumeAs(carol, `${epoch}!${shared}:0`);
      expect(secrets(got)).toEqual([]);
      expect(got.filter((e) => e.type === "message").map((e) => e.data)).toEqual(["after-join"]);
      expect(got.filter((e) => e.type === "gap").map((e) => e.data)).toEqual([shared]);
    });

    test("a user who left the channel, naming bob's position, gets nothing sent since", async () => {
      const dave = await newUser(ctl);
      await ctl.ok(`[join] ${bobChannel}!${dave.id}`);
      await ctl.ok(`[leave] ${bobChannel}!${dave.id}`);
      await ctl.ok(`[shout] ${bobChannel}!secret-after-leave`);
      const epoch = bobId.slice(0, bobId.indexOf("!"));
      expect(secrets(await resumeAs(dave, `${epoch}!${bobChannel}:1`))).toEqual([]);
    });

    test("another epoch resumes nothing: alice gets no replay at all", async () => {
      const alice = await newUser(ctl);
      await ctl.ok(`[join] ${bobChannel}!${alice.id}`);
      const got = await resumeAs(alice, `AAAAAAAAAAAA!u:0,${bobChannel}:0,1:0`);
      expect(secrets(got)).toEqual([]);
    });
  });
}
