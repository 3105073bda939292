// The browser client as files for the public port. The sources are imported as text, so they are
// inside the compiled binary too.

import type { StaticFile } from "../../transport/assets.ts";
// With type "text" Bun hands over each file's source as a string, whatever TypeScript infers for the path.
import moduleSource from "./webtalk.js" with { type: "text" };
// @ts-expect-error TypeScript refuses to import a declaration file as a value; here it is text.
import typesSource from "./webtalk.d.ts" with { type: "text" };

const JAVASCRIPT = "text/javascript; charset=utf-8";
// Unversioned URLs: a browser keeps its copy 5 minutes, then revalidates it (a 304 when unchanged).
const CACHE = "public, max-age=300";

/** `/webtalk.js` (ES module), `/webtalk.global.js` (classic script defining `webtalk`), `/webtalk.d.ts`. */
export function browserClientFiles(): StaticFile[] {
  const source = String(moduleSource);
  return [
    { path: "/webtalk.js", contentType: JAVASCRIPT, body: source, cacheControl: CACHE },
    { path: "/webtalk.global.js", contentType: JAVASCRIPT, body: classicScript(source), cacheControl: CACHE },
    { path: "/webtalk.d.ts", contentType: "application/typescript; charset=utf-8", body: String(typesSource), cacheControl: CACHE },
  ];
}

/** The module's top-level `export`s become properties of one global, `webtalk`, inside a private scope. */
export function classicScript(source: string): string {
  const names = [...source.matchAll(/^export (?:function|const) (\w+)/gm)].map((m) => m[1]);
  const body = source.replace(/^export /gm, "");
  return `(function () {\n"use strict";\n${body}\nglobalThis.webtalk = { ${names.join(", ")} };\n})();\n`;
}
