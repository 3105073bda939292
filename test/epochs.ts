// Reading the state epoch a server names (`[stats]` ends with ` epoch=EPOCH`): the lifetime of its IDs.

import { ControlClient } from "./helpers.ts";
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
