// A soak worker process holding browsers: it opens and closes WebSocket sessions on the soak's orders
// (over IPC) and reports each session when it ends: its close code and the keys of what arrived, in order.
// Usage (by the soak only): bun scripts/soak/browsers.ts ws://HOST:PORT/PATH

import { parseKey } from "./verify.ts";

export type Order =
  | { type: "open"; session: number; token: string }
  /** Leave once message `afterKey` has arrived (at once if it already has). */
  | { type: "close"; session: number; afterKey: number }
  | { type: "exit" };
export type Report =
  | { type: "ready" }
  | { type: "ended"; session: number; code: number; opened: boolean; keys: number[]; strange: string[] };

/** Handshakes under way at once: past this, opens wait their turn instead of flooding the listen backlog. */
const MAX_OPENING = 64;

interface Live {
  ws: WebSocket | undefined;
  opened: boolean;
  /** The key after which to leave; NaN while the soak has not asked. */
  closeAfter: number;
  keys: number[];
  strange: string[];
}

if (import.meta.main) runWorker(process.argv[2] ?? "");

function runWorker(url: string): void {
  const send = (report: Report) => process.send!(report);
  const live = new Map<number, Live>();
  const queue: { session: number; token: string }[] = [];
  let opening = 0;

  const open = (session: number, token: string): void => {
    const state = live.get(session)!;
    opening++;
    const ws = new WebSocket(url);
    state.ws = ws;
    let counted = true;
    const done = () => {
      if (counted) opening--;
      counted = false;
      next();
    };
    ws.onopen = () => {
      state.opened = true;
      done();
      ws.send(token);
    };
    ws.onmessage = (event) => {
      const text = typeof event.data === "string" ? event.data : "<binary>";
      const key = parseKey(text);
      if (key === undefined) return void state.strange.push(text.slice(0, 100));
      state.keys.push(key);
      if (key === state.closeAfter) ws.close();
    };
    ws.onclose = (event) => {
      done();
      live.delete(session);
      send({ type: "ended", session, code: event.code, opened: state.opened, keys: state.keys, strange: state.strange });
    };
  };

  const next = (): void => {
    while (opening < MAX_OPENING && queue.length > 0) {
      const { session, token } = queue.shift()!;
      open(session, token);
    }
  };

  process.on("message", (order: Order) => {
    if (order.type === "exit") process.exit(0);
    if (order.type === "open") {
      live.set(order.session, { ws: undefined, opened: false, closeAfter: Number.NaN, keys: [], strange: [] });
      queue.push(order);
      next();
      return;
    }
    // Only sessions the server admitted are told to leave, so the socket is open by now.
    const state = live.get(order.session);
    if (!state) return;
    state.closeAfter = order.afterKey;
    if (state.keys.includes(order.afterKey)) state.ws?.close();
  });
  // The soak went away: nothing to report to any more.
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready" });
}
