#!/usr/bin/env bun
import { runMain } from "citty";
import { serveCommand } from "./cli/serve.ts";

void runMain(serveCommand);
