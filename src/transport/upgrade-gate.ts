/** What may refuse a WebSocket upgrade before it happens. */
export interface UpgradeRules {
  /** Allowed Origin values; empty allows any. */
  origins: readonly string[];
  maxConnections: number;
}

/**
 * Returns the refusal for an upgrade request, or undefined to let it through. A request without an
 * Origin header is not from a browser page, so cross-site hijacking does not apply to it.
 */
export function refuseUpgrade(request: Request, open: number, rules: UpgradeRules): Response | undefined {
  const origin = request.headers.get("origin");
  if (rules.origins.length > 0 && origin !== null && !rules.origins.includes(origin)) {
    return new Response("origin not allowed\n", { status: 403 });
  }
  if (open >= rules.maxConnections) {
    return new Response("too many connections\n", { status: 503, headers: { "Retry-After": "5" } });
  }
  return undefined;
}
