// Small fixed files served over HTTP by the public port (the browser client, the demo page),
// with validators so a browser's cached copy costs a 304 and not the body.

import { createHash } from "node:crypto";

/** Answers an HTTP request that is not a WebSocket upgrade, or returns undefined to pass it on. */
export type HttpHandler = (request: Request, url: URL) => Response | Promise<Response> | undefined;

export interface StaticFile {
  path: string;
  contentType: string;
  body: string;
  /** The Cache-Control header, e.g. "public, max-age=300". */
  cacheControl: string;
}

/** Serves each file at its path for GET and HEAD; strong ETags from the content, If-None-Match answered 304. */
export function serveStatic(files: readonly StaticFile[]): HttpHandler {
  const byPath = new Map(
    files.map((file) => {
      const headers = {
        "Content-Type": file.contentType,
        "Cache-Control": file.cacheControl,
        ETag: `"${createHash("sha256").update(file.body).digest("base64url").slice(0, 22)}"`,
        // Module scripts are fetched in CORS mode: pages on the application's own origin load /webtalk.js from here.
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
      };
      return [file.path, { body: file.body, headers }] as const;
    }),
  );
  return (request, url) => {
    const file = byPath.get(url.pathname);
    if (!file) return undefined;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { Allow: "GET, HEAD" } });
    }
    if (matches(request.headers.get("If-None-Match"), file.headers.ETag)) {
      return new Response(null, { status: 304, headers: file.headers });
    }
    return new Response(request.method === "HEAD" ? null : file.body, { headers: file.headers });
  };
}

/** Tries each handler in turn; the first Response wins. */
export function firstOf(...handlers: HttpHandler[]): HttpHandler {
  return (request, url) => {
    for (const handler of handlers) {
      const response = handler(request, url);
      if (response) return response;
    }
    return undefined;
  };
}

function matches(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.trim() === "*" || ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
