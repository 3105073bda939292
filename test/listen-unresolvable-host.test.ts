// A mistyped host in --public, --private or --admin (`locahost:12344`) is an operator's mistake like
// any other: one line on stderr naming the address (docs/reference/cli.md, exit codes), not a Bun
// stack trace. The real server process; a .invalid name never resolves (RFC 6761).

import { expect, test } from "bun:test";
import { MAIN, runToExit } from "./process.ts";

const ports = { public: "127.0.0.1:0", private: "127.0.0.1:0", admin: "127.0.0.1:0" };

test.each(["public", "private", "admin"] as const)("--%s with a host that does not resolve: one line naming it, exit 1", async (which) => {
  const flags = Object.entries({ ...ports, [which]: "no-such-host.invalid:0" }).flatMap(([name, value]) => [`--${name}`, value]);
  const result = await runToExit([process.execPath, MAIN, ...flags], { env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent" }, timeoutMs: 15_000 });
  const errors = result.stderr.trim().split("\n").filter((line) => !/^\S+Z INFO /.test(line));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toStartWith("webtalk: ");
  expect(errors[0]).toContain("no-such-host.invalid");
  expect(result.code).toBe(1);
});
