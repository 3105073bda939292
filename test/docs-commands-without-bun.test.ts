// The README promises: after `npm install` neither `bun` nor `webtalk` is on your PATH, so the docs
// run Bun as `npm run SCRIPT` or `npx bun`. A shell block (or an inline command) in README.md,
// CHANGELOG.md or docs/ that starts with a bare `bun` fails as written on a fresh clone with only
// Node.js and npm: `sh: 1: bun: not found`, exit 127.

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const files = ["README.md", ...new Bun.Glob("docs/**/*.md").scanSync({ cwd: ROOT })];

test("no doc tells a newcomer to run a bare `bun …` or `bunx …`", () => {
  const bare: string[] = [];
  for (const file of files) {
    let fence = "";
    readFileSync(join(ROOT, file), "utf8").split("\n").forEach((line, i) => {
      const open = /^\s*```(\w*)/.exec(line);
      if (open) {
        fence = fence ? "" : open[1] || "text";
        return;
      }
      const where = `${file}:${i + 1}: ${line.trim()}`;
      if (["sh", "bash", "shell", "console", "text"].includes(fence) && /^\s*(\$\s+)?bunx?\s/.test(line)) bare.push(where);
      // Prose that says "run `bun run bench:modes`" is a command too.
      if (!fence && /`bunx? run [\w:-]+/.test(line)) bare.push(where);
    });
  }
  expect(bare).toEqual([]);
});
