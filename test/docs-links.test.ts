// Every relative link in the README, the CHANGELOG and docs/ leads to a file that exists and, with a
// `#anchor`, to a heading in it: the docs are read by following links, so a broken one is a dead end.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { findBrokenLinks, slugify } from "./markdown-links.ts";

const ROOT = resolve(import.meta.dir, "..");

describe("documentation links", () => {
  test("every relative link and anchor in README.md, CHANGELOG.md and docs/**/*.md resolves", () => {
    const files = ["README.md", "CHANGELOG.md", ...new Bun.Glob("docs/**/*.md").scanSync({ cwd: ROOT })].map((f) => join(ROOT, f));
    const broken = findBrokenLinks(files, ROOT).map(({ file, line, target, problem }) => `${file}:${line}: ${target} (${problem})`);
    expect(broken).toEqual([]);
  });

  // The check above passes on an empty list too: prove it would report each kind of dead end.
  test("the checker reports a missing file, a missing heading and a missing anchor in the same file", () => {
    const dir = mkdtempSync(join(tmpdir(), "webtalk-links-"));
    try {
      mkdirSync(join(dir, "docs"));
      writeFileSync(join(dir, "docs", "a.md"), "# A page\n\n## Health check: `GET /healthz`\n");
      const page = [
        "# Index",
        "[fine](docs/a.md) [fine too](docs/a.md#health-check-get-healthz) [here](#index) [web](https://example.com/x.md)",
        "[gone](docs/missing.md) [no heading](docs/a.md#nowhere) [not here](#elsewhere)",
        "```sh",
        "[inside a code block](ignored.md)",
        "```",
        "`[inline code](ignored.md)`",
      ].join("\n");
      writeFileSync(join(dir, "README.md"), page);
      const broken = findBrokenLinks([join(dir, "README.md")], dir).map(({ line, target }) => `${line} ${target}`);
      expect(broken).toEqual(["3 docs/missing.md", "3 docs/a.md#nowhere", "3 #elsewhere"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("anchors are GitHub's heading slugs", () => {
    expect(slugify("In the browser: `/webtalk.js`")).toBe("in-the-browser-webtalkjs");
    expect(slugify("Never losing a message across a reconnect: `webtalk.v2`")).toBe("never-losing-a-message-across-a-reconnect-webtalkv2");
    expect(slugify("Restarts, restores and data loss: what to do")).toBe("restarts-restores-and-data-loss-what-to-do");
    expect(slugify("The [demo](demo.md) page")).toBe("the-demo-page");
  });
});
