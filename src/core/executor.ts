import type { ConsolaInstance } from "consola";
import type { CommandResult, Metrics } from "../observe/metrics.ts";
import { errorReply } from "../protocol/codes.ts";
import { parseCommand } from "../protocol/command.ts";
import type { Maybe, State } from "../state/state.ts";
import type { Handler } from "./command-kit.ts";
import { inOrder, isInOrder } from "./in-order.ts";
import type { Delivery } from "./delivery.ts";
import { messagingCommands } from "./messaging-commands.ts";
import type { NumberedSend } from "./numbered-send.ts";
import { presenceCommands } from "./presence-commands.ts";
import type { ReplayLog } from "./replay.ts";
import type { ControlSession } from "./session.ts";

export interface ExecutorOptions {
  state: State;
  delivery: Delivery;
  /** Held messages kept per offline user. */
  heldLimit: number;
  replay: ReplayLog;
  /** A cluster's numbered send (see NumberedSend); a single process has none. */
  numbered?: NumberedSend;
  /** The counters `[stats]` reports: this node's, or the sum over a cluster's nodes. */
  counters: () => Maybe<Record<string, number>>;
  /** The `[auth]` secret; "" when none is required (then `[auth]` always succeeds). */
  secret: string;
  metrics: Metrics;
  log: ConsolaInstance;
  /** Answers once this process hears every event raised from then on: `[listen]` replies after it. */
  eventsReady?: () => Promise<void> | undefined;
  /** --sessions above 1: `[stats]` also reports `sessions=` (browsers logged in; `online=` counts users). */
  reportSessions?: boolean;
}

/** Runs one control payload and returns the reply payload. Expected failures are `[error]` replies. */
export type Execute = (payload: string, session: ControlSession) => Maybe<string>;

/** The meaning of every control command, free of any transport: the control port and `ctl` share it. */
export function createExecutor(options: ExecutorOptions): Execute {
  const handlers: Record<string, Handler> = { ...messagingCommands(options), ...presenceCommands(options) };
  const { metrics } = options;

  // Every command is counted once here, by known name only, so the metric's label values stay a small
  // fixed set. This is the control path's hot loop: no allocation beyond the command's own.
  return function execute(payload: string, session: ControlSession): Maybe<string> {
    const started = performance.now();
    const command = parseCommand(payload);
    if (!command.ok) return counted("unknown", errorReply(command.error), started);
    const { name, data } = command.value;
    const handler = Object.hasOwn(handlers, name) ? handlers[name] : undefined;
    if (!handler) return counted("unknown", errorReply(`unknown command [${name}]`), started);
    const reply = handler(data, session);
    if (!(reply instanceof Promise)) return counted(name, reply, started);
    const answered = reply.then(
      (text) => counted(name, text, started),
      (error: unknown) => {
        metrics.commands.add(name, "error");
        metrics.commandSeconds.observe(name, (performance.now() - started) / 1000);
        throw error;
      },
    );
    return isInOrder(reply) ? inOrder(answered) : answered;
  };

  function counted(name: string, reply: string, started: number): string {
    metrics.commands.add(name, resultOf(reply));
    metrics.commandSeconds.observe(name, (performance.now() - started) / 1000);
    return reply;
  }
}

function resultOf(reply: string): CommandResult {
  return reply.startsWith("[ok]") ? "ok" : "error";
}

