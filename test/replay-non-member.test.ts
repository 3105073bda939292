// Breaker test (issue 14: no message to the wrong person, by channel). A shout reaches the browsers of
// the channel's members at the time it is sent. With webtalk.v2, a member's page that reconnects lists
// its last position per channel, and the server replays "every message after the position still in the
// window" for each channel the user is a member of NOW. So a user removed from a channel ([leave]) and
// added back later gets, at its next reconnection, the shouts sent while it was not a member: no
// malicious client needed, /webtalk.js keeps the channel's position across the leave and sends it.
// (A hand-written client can also send position 0 for a channel it was just added to, and read the
// channel's whole window from before it joined.) End to end against a real server process.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, messagesUntil, newUser } from "./helpers.ts";
import { replayEpoch } from "./epochs.ts";
import { MAIN, LOOPBACK, spawnServer } from "./process.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-replay-member-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const mode of [[] as string[], ["--data", "DATA"]]) {
  test(`a shout sent while a user was not in the channel never reaches that user's page (${mode.length ? "--data" : "memory"})`, async () => {
    const server = await spawnServer(["bun", MAIN, ...LOOPBACK, ...mode.map((a) => (a === "DATA" ? join(dir, "webtalk.db") : a))]);
    try {
      const ctl = await ControlClient.connect(server.privatePort);
      const channel = Number(await ctl.ok("[newchannel]"));
      const bob = await newUser(ctl);
      await ctl.ok(`[join] ${channel}!${bob.id}`);

      // Bob's page (webtalk.v2) hears the channel.
      let page = await Browser.open(server.publicUrl, "webtalk.v2");
      page.send(bob.token);
      const epoch = await replayEpoch(page);
      await ctl.ok(`[shout] ${channel}!hello team`);
      await ctl.ok(`[whisper] ${bob.id}!m1`);
      expect(await messagesUntil(page, "m1")).toEqual([`${channel}:1!hello team`]);

      // Bob is taken out of the channel; the others talk about him; later he is added back.
      await ctl.ok(`[leave] ${channel}!${bob.id}`);
      await ctl.ok(`[shout] ${channel}!private: we are letting bob go`);
      await ctl.ok(`[whisper] ${bob.id}!m2`);
      expect(await messagesUntil(page, "m2")).toEqual([]); // not a member: nothing live, as it should be
      await ctl.ok(`[join] ${channel}!${bob.id}`);

      // His network blinks: the page resumes from what it had seen (channel position 1, whispers 2).
      page.close();
      await page.closed;
      page = await Browser.open(server.publicUrl, "webtalk.v2");
      page.send(`${bob.token}!${epoch}!${channel}:1,u:2`);
      expect(await page.messages.next("#epoch")).toBe(`#epoch ${epoch}`);
      await ctl.ok(`[shout] ${channel}!welcome back`);
      await ctl.ok(`[whisper] ${bob.id}!m3`);
      const resumed = await messagesUntil(page, "m3");
      console.log(`bob's page after re-joining got: ${JSON.stringify(resumed)}`);
      expect(resumed.filter((m) => m.includes("letting bob go"))).toEqual([]);
      page.close();
      ctl.close();
    } finally {
      await server.stop();
    }
  }, 30_000);
}
