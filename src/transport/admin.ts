import type { Server } from "bun";
import type { ConsolaInstance } from "consola";
import { readiness, type Health } from "../observe/health.ts";
import { CONTENT_TYPE } from "../observe/prometheus.ts";

export interface AdminOptions {
  hostname: string;
  port: number;
  /** The readiness report: `/healthz` answers it as JSON, `/readyz` in one line, with the same status. */
  health: () => Promise<Health>;
  /** The Prometheus text exposition of one scrape. */
  metrics: () => Promise<string>;
  log: ConsolaInstance;
}

/**
 * The operator's HTTP side, on its own address: `GET /livez`, `/readyz`, `/healthz` and `/metrics`, nothing else.
 * `/livez` is liveness (restart me if this fails); `/readyz` and its alias `/healthz` are readiness (send
 * me traffic): a Redis outage or a drain must never make an orchestrator restart a healthy process.
 */
export function serveAdmin({ hostname, port, health, metrics, log }: AdminOptions): Server<undefined> {
  const routes: Record<string, () => Promise<Response>> = {
    // Answered by the event loop alone: never the state, the disk or the lifecycle.
    "/livez": async () => new Response("alive\n", { headers: { "Content-Type": "text/plain; charset=utf-8", ...NO_STORE } }),
    // Readiness, as JSON with version and uptime: the same status as /readyz, from the same report.
    "/healthz": async () => {
      const body = await health();
      return Response.json(body, { status: body.status === "ok" ? 200 : 503, headers: NO_STORE });
    },
    // Plain text, one line: what a probe logs is the reason itself.
    "/readyz": async () => {
      const { ready, reason } = readiness(await health());
      const body = ready ? "ready\n" : `not ready: ${reason}\n`;
      return new Response(body, { status: ready ? 200 : 503, headers: { "Content-Type": "text/plain; charset=utf-8", ...NO_STORE } });
    },
    "/metrics": async () => new Response(await metrics(), { headers: { "Content-Type": CONTENT_TYPE, ...NO_STORE } }),
  };
  return Bun.serve({
    hostname,
    port,
    async fetch(request) {
      // An HTTP/1.0 probe (a shell's /dev/tcp, old load balancers) sends no Host: its URL is the path alone.
      const route = routes[new URL(request.url, "http://admin").pathname];
      if (!route) return new Response("not found: try /livez, /readyz, /healthz or /metrics\n", { status: 404 });
      if (request.method !== "GET" && request.method !== "HEAD") {
        return new Response("method not allowed\n", { status: 405, headers: { Allow: "GET, HEAD" } });
      }
      return route();
    },
    error(error) {
      log.error(`admin request failed:`, error);
      return new Response("internal error\n", { status: 500 });
    },
  });
}

const NO_STORE = { "Cache-Control": "no-store" };
