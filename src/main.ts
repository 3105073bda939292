#!/usr/bin/env bun
import { runMain } from "citty";
import { runCtl } from "./cli/ctl.ts";
import { serveCommand } from "./cli/serve.ts";

// `webtalk ctl …` talks to a running server; anything else runs one. Decided here rather than by
// citty subcommands: the server's flags take values (127.0.0.1:0) that citty would take for a command name.
if (process.argv[2] === "ctl") void runCtl(process.argv.slice(3));
else void runMain(serveCommand);
