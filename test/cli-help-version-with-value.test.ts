// `webtalk --version=1`, `--help=yes`: a value given to --help or --version (which take none) must not
// be ignored in favour of a server started on the defaults (public 0.0.0.0:12345): issue 16's "unknown
// words and bad values are exit 2 with a message naming them". The real server process; its real
// ports are given, so a server that starts anyway is seen running (a timeout), not exit 2.

import { expect, test } from "bun:test";
import { LOOPBACK, MAIN, runToExit } from "./process.ts";

test.each(["--version=1", "--version=no", "-v=1", "--help=yes", "--help=no", "-h=1"])(
  "webtalk %s is exit 2 naming the flag, not a server on defaults",
  async (arg) => {
    const result = await runToExit([process.execPath, MAIN, arg, ...LOOPBACK, "--admin", "127.0.0.1:0"], {
      env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent" },
      timeoutMs: 6_000,
    }).catch((error: Error) => ({ code: "still running", stdout: "", stderr: error.message }));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(arg.split("=")[0]!);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  },
  10_000,
);
