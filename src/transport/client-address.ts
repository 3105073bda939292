// Which address a browser connects from, when a reverse proxy stands in front of webtalk.

import { inCidrs, isIp, type Cidr } from "../config/cidr.ts";

/**
 * The browser's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
 * `X-Forwarded-For` hop that is not itself trusted (hops left of it could be written by anyone,
 * the browser included, so they are never believed). An untrusted peer's header is ignored.
 */
export function clientAddress(peer: string, forwardedFor: string | null, trusted: readonly Cidr[]): string {
  if (trusted.length === 0 || forwardedFor === null || !inCidrs(peer, trusted)) return peer;
  const hops = forwardedFor.split(",").map((hop) => hop.trim()).filter((hop) => hop !== "");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!isIp(hop)) return peer; // a garbled header: believe only the socket
    if (!inCidrs(hop, trusted)) return hop;
  }
  return hops[0] ?? peer;
}

