// README.md: "After `npm install` neither `bun` nor `webtalk` is on your PATH". So no command the
// README, the CHANGELOG or docs/ give to type in a clone may start with `bun run` or `bunx` (on a
// fresh clone: "bash: bun: command not found", exit 127): `npm run …` or `npx bun …` work. Shell
// blocks and inline code alike, since both are copied into a terminal.

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./process.ts";

test("no doc tells a newcomer to type `bun run …` or `bunx …` (bun is not on a fresh clone's PATH)", () => {
  const files = ["README.md", "CHANGELOG.md", ...new Bun.Glob("docs/**/*.md").scanSync({ cwd: ROOT })];
  const found: string[] = [];
  for (const file of files) {
    readFileSync(join(ROOT, file), "utf8")
      .split("\n")
      .forEach((line, i) => {
        const commands = [...line.matchAll(/`(bun run [^`]*|bunx [^`]*)`/g)].map((m) => m[1]!);
        if (/^\s*(bun run|bunx) /.test(line)) commands.push(line.trim());
        for (const command of commands) found.push(`${file}:${i + 1}: ${command}`);
      });
  }
  expect(found).toEqual([]);
});
