// Reading the epochs a server names: the state epoch (`[stats]` ends with ` epoch=EPOCH`: the lifetime of
// its IDs) and the replay epoch a webtalk.v2 page is told at login (the lifetime of its positions).

import { ControlClient, type Browser } from "./helpers.ts";
import type { Spawned } from "./process.ts";

/** The state epoch on `ctl`'s server, from `[stats]`. */
export async function stateEpoch(ctl: ControlClient): Promise<string> {
  return / epoch=(\S+)$/.exec(await ctl.ok("[stats]"))![1]!;
}

/** The state epoch of a server process, read on a control connection of its own (closed after). */
export async function stateEpochOf(server: Pick<Spawned, "privatePort">): Promise<string> {
  const ctl = await ControlClient.connect(server.privatePort);
  try {
    return await stateEpoch(ctl);
  } finally {
    ctl.close();
  }
}

/** The replay epoch a webtalk.v2 page is told first at login (`#epoch EPOCH`): its next message. */
export async function replayEpoch(page: Browser): Promise<string> {
  return (await page.messages.next("#epoch")).slice("#epoch ".length);
}
