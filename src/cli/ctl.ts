import { defineCommand, runCommand, type ArgsDef, type CommandDef } from "citty";
import { createConsola } from "consola/basic";
import { stripAnsi } from "consola/utils";
import pkg from "../../package.json" with { type: "json" };
import { formatAddress } from "../config/address.ts";
import { unknownVariables } from "../config/load.ts";
import { fitsInFrame } from "../protocol/frame.ts";
import { CtlConnection, CtlFailure } from "./ctl-connection.ts";
import {
  connectionArgs,
  connectionFlags,
  refuseUnknownFlags,
  resolveTarget,
  tlsSwitch,
  UsageError,
  type ConnectionFlags,
  type Target,
} from "./ctl-target.ts";
import { renderCtlCommandHelp, renderCtlHelp, type CtlCommandHelp } from "./ctl-help.ts";
import { helpStyle } from "./help.ts";
import { createProgress } from "./progress.ts";

/** `webtalk ctl …` from the command line: exit 0 on `[ok]`, 1 on `[error]` or no server, 2 on a usage error. */
export async function runCtl(rawArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<never> {
  const overrides: ConnectionFlags = {};
  const ctl = createCtlCommand(env, overrides);
  const flags = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
  if (rawArgs.length === 0) {
    process.stderr.write(helpText(ctl, undefined, helpStyle(process.stderr, env)));
    return await exit(2);
  }
  if (flags.includes("--help") || flags.includes("-h")) {
    process.stdout.write(helpText(ctl, flags, helpStyle(process.stdout, env)));
    return await exit(0);
  }
  // The server's variables serve ctl too: a mistyped one would quietly reach the default server.
  for (const warning of unknownVariables(env)) process.stderr.write(`webtalk ctl: ${warning}\n`);
  try {
    refuseUnknownFlags(rawArgs);
    const tls = tlsSwitch(rawArgs);
    if (tls !== undefined) overrides.tls = tls;
    await runCommand(ctl, { rawArgs });
    return await exit(0);
  } catch (error) {
    if (error instanceof CtlFailure) {
      log.error(error.message);
      return await exit(1);
    }
    // citty's own errors (a missing argument, an unknown command) are usage errors too.
    if (error instanceof UsageError || (error as Error).name === "CLIError") {
      process.stderr.write(`webtalk ctl: ${stripAnsi((error as Error).message)} (see webtalk ctl --help)\n`);
      return await exit(2);
    }
    throw error;
  }
}

/** The help of the command named on the line, or of ctl itself. */
function helpText(ctl: CommandDef<any>, words: string[] | undefined, style: ReturnType<typeof helpStyle>): string {
  const commands = ctl.subCommands as Record<string, CommandDef>;
  const named = words?.find((word) => Object.hasOwn(commands, word));
  if (named) return renderCtlCommandHelp(helpOf(commands[named]!), style);
  return renderCtlHelp(helpOf(ctl), Object.values(commands).map(helpOf), style);
}

function helpOf(command: CommandDef<any>): CtlCommandHelp {
  const meta = command.meta as { name: string; description: string };
  return { name: meta.name, description: meta.description, args: command.args as ArgsDef };
}

/** Commands that are one payload `[name] A!B` built from their arguments, answered by one reply. */
const SIMPLE: Record<string, { description: string; args: [name: string, description: string][] }> = {
  newuser: { description: "create a user; prints ID!SALT, what its browser logs in with", args: [] },
  killuser: { description: "delete a user; its browser is closed with 4004", args: [userArg()] },
  whisper: { description: "send MESSAGE to a user's browser (held while none is connected)", args: [userArg(), messageArg()] },
  newchannel: { description: "create a channel; prints its ID", args: [] },
  killchannel: { description: "delete a channel", args: [channelArg()] },
  shout: { description: "send MESSAGE to every connected member of a channel", args: [channelArg(), messageArg()] },
  join: { description: "add a user to a channel", args: [channelArg(), userArg("user")] },
  leave: { description: "remove a user from a channel", args: [channelArg(), userArg("user")] },
  store: { description: "store VALUE under KEY", args: [["key", "the key (no !)"], ["value", "the value"]] },
  retrieve: { description: "print the value stored under KEY (empty when absent)", args: [["key", "the key"]] },
  clear: { description: "remove KEY from the store", args: [["key", "the key"]] },
  online: { description: "print 1 when the user has a browser connected, 0 when not", args: [userArg()] },
  count: { description: "print MEMBERS!ONLINE of a channel", args: [channelArg()] },
  kick: { description: "close the user's browser with 4005; the user stays", args: [userArg()] },
  ping: { description: "print pong", args: [] },
  stats: { description: "print the server's figures (uptime_s=… users=… online=…)", args: [] },
};

/** The `ctl` command tree. The parent parses the connection flags wherever they stand on the line. */
export function createCtlCommand(env: NodeJS.ProcessEnv, overrides: ConnectionFlags = {}) {
  let parent: ConnectionFlags = {};
  const target = (args: Record<string, unknown>): Target => resolveTarget({ ...parent, ...connectionFlags(args), ...overrides }, env);

  const simple = Object.entries(SIMPLE).map(([name, spec]) => {
    const args: ArgsDef = { ...connectionArgs };
    for (const [arg, description] of spec.args) args[arg] = { type: "positional", description };
    const command = defineCommand({
      meta: { name, description: spec.description },
      args,
      async run({ args: parsed }) {
        const values = positionals(parsed._, spec.args.length);
        values.slice(0, -1).forEach((value, i) => {
          if (value.includes("!")) throw new UsageError(`${spec.args[i]![0].toUpperCase()} may not contain "!": ${value}`);
        });
        await oneShot(target(parsed), `[${name}]${values.length > 0 ? ` ${values.join("!")}` : ""}`);
      },
    });
    return [name, command] as const;
  });

  const raw = defineCommand({
    meta: { name: "raw", description: "send PAYLOAD as it is, e.g. '[count] 1', and print the reply's data" },
    args: { ...connectionArgs, payload: { type: "positional", description: "a whole payload: [command] DATA" } },
    async run({ args }) {
      const [payload] = positionals(args._, 1);
      await oneShot(target(args), payload!);
    },
  });

  const members = defineCommand({
    meta: { name: "members", description: "print every member ID of a channel, one per line, paging through them all" },
    args: { ...connectionArgs, channel: { type: "positional", description: "channel ID" } },
    async run({ args }) {
      const [channel] = positionals(args._, 1);
      await listMembers(target(args), channel!);
    },
  });

  const listen = defineCommand({
    meta: { name: "listen", description: "print each event ([epoch] EPOCH first, then [online] ID, [offline] ID, [message] ID!TEXT) until interrupted" },
    args: { ...connectionArgs },
    async run({ args }) {
      positionals(args._, 0);
      await listenForEvents(target(args));
    },
  });

  return defineCommand({
    meta: { name: "webtalk ctl", version: pkg.version, description: "Talk to a running webtalk over its control port" },
    args: { ...connectionArgs },
    setup({ args }) {
      parent = connectionFlags(args);
    },
    subCommands: { ...Object.fromEntries(simple), members, listen, raw },
  });
}

/** Sends one payload; prints the `[ok]` data, or fails with the `[error]` text. */
async function oneShot(target: Target, payload: string): Promise<void> {
  if (!fitsInFrame(payload)) throw new UsageError("the command is larger than one frame (99,999 bytes)");
  const conn = await connect(target);
  try {
    print(okData(await conn.request(payload, target.timeoutMs)));
  } finally {
    conn.close();
  }
}

async function listMembers(target: Target, channel: string): Promise<void> {
  const conn = await connect(target);
  const progress = createProgress();
  let count = 0;
  try {
    for (let after = ""; ; ) {
      progress.update(`members of channel ${channel}: ${count}`);
      const page = okData(await conn.request(`[members] ${channel}${after}`, target.timeoutMs));
      if (page === "") break;
      const ids = page.split(",");
      count += ids.length;
      progress.clear();
      print(ids.join("\n"));
      after = `!${ids[ids.length - 1]}`;
    }
  } finally {
    progress.stop();
    conn.close();
  }
}

async function listenForEvents(target: Target): Promise<void> {
  const conn = await connect(target);
  const progress = createProgress();
  let events = 0;
  let online = 0;
  const show = () => progress.update(`listening · ${online} online · ${events} event${events === 1 ? "" : "s"} · Ctrl-C stops`);
  conn.onEvent = (event) => {
    events++;
    if (event.startsWith("[online] ")) online++;
    else if (event.startsWith("[offline] ")) online--;
    progress.clear();
    print(event);
    show();
  };
  const { promise: interrupted, resolve: interrupt } = Promise.withResolvers<undefined>();
  process.once("SIGINT", () => interrupt(undefined));
  process.once("SIGTERM", () => interrupt(undefined));
  // A reader that went away (`| head`) ends the listening as an interrupt does.
  process.stdout.once("error", () => interrupt(undefined));
  try {
    okData(await conn.request("[listen]", target.timeoutMs));
    // Replies and events arrive in the order they happened: this figure already counts every event before it.
    const stats = okData(await conn.request("[stats]", target.timeoutMs));
    online = Number(/(?:^| )online=(\d+)/.exec(stats)?.[1] ?? 0);
    // Said once on stderr, so a script knows from when on no event is missed.
    log.info(`listening to ${formatAddress(target.address)}`);
    show();
    const why = await Promise.race([conn.closed, interrupted]);
    if (why) throw why;
  } finally {
    progress.stop();
    conn.close();
  }
}

async function connect(target: Target): Promise<CtlConnection> {
  const conn = await CtlConnection.open(target.address, target.timeoutMs, target.tls);
  if (target.secret === undefined) return conn;
  const reply = await conn.request(`[auth] ${target.secret}`, target.timeoutMs);
  if (reply === "[ok] authenticated") return conn;
  conn.close();
  throw new CtlFailure(`authentication failed: ${reply.replace(/^\[error\] /, "")}`);
}

/** The data of an `[ok] DATA` reply; an `[error] MESSAGE` reply becomes a CtlFailure with MESSAGE. */
function okData(reply: string): string {
  if (reply.startsWith("[ok] ")) return reply.slice(5);
  if (reply === "[ok]") return "";
  throw new CtlFailure(reply.replace(/^\[error\] ?/, ""));
}

/** The positional arguments, exactly `count` of them. */
function positionals(values: unknown[], count: number): string[] {
  if (values.length > count) throw new UsageError(`too many arguments: ${values.slice(count).join(" ")} (quote a message that has spaces)`);
  if (values.length < count) throw new UsageError(`missing arguments`);
  return values.map(String);
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Exits once stdout has taken everything printed, so a pipe reader never loses the end. */
async function exit(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(code);
}

const log = createConsola({ stdout: process.stderr, stderr: process.stderr });

function userArg(name = "id"): [string, string] {
  return [name, "user ID"];
}

function channelArg(): [string, string] {
  return ["channel", "channel ID"];
}

function messageArg(): [string, string] {
  return ["message", "the text, any UTF-8 (quote it; put it after -- when it starts with -)"];
}
