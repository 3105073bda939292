// Finds the relative links of markdown files that lead nowhere: a missing file, or a `#anchor` that is
// no heading of the file it points into. Anchors are GitHub's heading slugs, since that is where the
// docs are read.

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";

/** One link that does not resolve: where it is, what it says, and why it fails. */
export interface BrokenLink {
  file: string;
  line: number;
  target: string;
  problem: string;
}

/** Every broken relative link in `files` (absolute paths); `root` only shortens the names reported. */
export function findBrokenLinks(files: string[], root: string): BrokenLink[] {
  const broken: BrokenLink[] = [];
  for (const file of files) {
    for (const { line, target } of linksIn(readFileSync(file, "utf8"))) {
      const problem = checkTarget(file, target);
      if (problem) broken.push({ file: relative(root, file), line, target, problem });
    }
  }
  return broken;
}

/** The anchors GitHub gives a markdown text's headings, in order, duplicates numbered `-1`, `-2`… */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const text of proseLines(markdown).flatMap(({ text }) => /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text)?.[1] ?? [])) {
    const slug = slugify(text);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** GitHub's slug: the heading's visible text, lower-cased, punctuation dropped, spaces to hyphens. */
export function slugify(heading: string): string {
  const visible = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // a link in a heading keeps only its text
    .replace(/<[^>]+>/g, "");
  return visible
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, "")
    .replace(/ /g, "-");
}

/** Inline links and images, and reference definitions, outside code. */
function linksIn(markdown: string): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = text.replace(/(`+)[^`]*?\1/g, ""); // inline code is not a link, whatever it holds
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: match[1]! });
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(prose);
    if (definition) links.push({ line, target: definition[1]! });
  }
  return links;
}

/** The lines outside fenced code blocks, numbered from 1. */
function proseLines(markdown: string): { line: number; text: string }[] {
  const lines: { line: number; text: string }[] = [];
  let fence: string | undefined;
  markdown.split("\n").forEach((text, i) => {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(text)?.[1];
    if (marker && (fence === undefined || (marker[0] === fence[0] && marker.length >= fence.length))) {
      fence = fence === undefined ? marker : undefined;
      return;
    }
    if (fence === undefined) lines.push({ line: i + 1, text });
  });
  return lines;
}

/** Why `target`, linked from `file`, leads nowhere; undefined when it resolves or is not relative. */
function checkTarget(file: string, target: string): string | undefined {
  // Absolute URLs (https:, mailto:) and site-absolute paths are another site's business.
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("/")) return undefined;
  const hash = target.indexOf("#");
  const path = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const resolved = path === "" ? file : resolve(dirname(file), path);
  if (!existsSync(resolved)) return "no such file";
  if (anchor === undefined) return undefined;
  if (statSync(resolved).isDirectory() || !resolved.endsWith(".md")) return "an anchor into something that is not a markdown file";
  return headingAnchors(readFileSync(resolved, "utf8")).has(anchor) ? undefined : `no heading #${anchor} in it`;
}
