// An HTTP relay that stands for a proxy that breaks WebSocket: it answers 400 to every upgrade (or,
// with "swallow", accepts it and then passes nothing either way) and passes plain requests (streamed
// responses included) on to the server. `cut()` breaks every response in flight, as a lost network
// does; later requests go through again.

export class UpgradeRefusingProxy {
  readonly #server: ReturnType<typeof Bun.serve>;
  readonly #inFlight = new Set<AbortController>();
  /** Upgrade requests refused (or swallowed) so far. */
  refused = 0;
  /** Every plain request relayed, as `PATH?QUERY`: a test counts a page's reconnects here. */
  readonly requests: string[] = [];
  /** While true, plain requests get 502 (the network is away); upgrades are answered as before. */
  down = false;
  /**
   * When set, the relay cuts every response in flight once it has relayed this many more bytes of
   * responses (then unsets it): a cut at a chosen point of a burst, wherever the chunks fall.
   */
  cutAfterBytes: number | undefined;

  constructor(
    readonly targetPort: number,
    readonly upgrades: "refuse" | "swallow" = "refuse",
  ) {
    this.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      fetch: (request, server) => {
        if (upgrades === "swallow" && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
          this.refused++;
          // The browser's WebSocket opens; what it sends goes nowhere and nothing comes back.
          if (server.upgrade(request, { headers: protocolOf(request), data: undefined })) return undefined;
        }
        return this.#relay(request);
      },
      websocket: { message() {} },
    });
  }

  get port(): number {
    return this.#server.port!;
  }

  cut(): void {
    for (const abort of this.#inFlight) abort.abort();
    this.#inFlight.clear();
  }

  stop(): void {
    this.cut();
    void this.#server.stop(true);
  }

  async #relay(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      this.refused++;
      return new Response("WebSocket is not allowed here\n", { status: 400 });
    }
    const url = new URL(request.url);
    this.requests.push(`${url.pathname}${url.search}`);
    if (this.down) return new Response("bad gateway\n", { status: 502 });
    const abort = new AbortController();
    this.#inFlight.add(abort);
    const headers = new Headers(request.headers);
    headers.delete("host");
    try {
      const upstream = await fetch(`http://127.0.0.1:${this.targetPort}${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        signal: abort.signal,
        decompress: false,
      } as RequestInit);
      const counted = (bytes: number) => {
        if (this.cutAfterBytes === undefined) return;
        this.cutAfterBytes -= bytes;
        if (this.cutAfterBytes > 0) return;
        this.cutAfterBytes = undefined;
        queueMicrotask(() => this.cut());
      };
      return new Response(upstream.body && relayed(upstream.body, abort, counted), { status: upstream.status, headers: upstream.headers });
    } catch {
      this.#inFlight.delete(abort);
      return new Response("bad gateway\n", { status: 502 });
    }
  }
}

/** The upstream body, read here so that a cut ends the downstream response without an error in the test's log. */
function relayed(body: ReadableStream<Uint8Array>, abort: AbortController, counted: (bytes: number) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else {
          controller.enqueue(value);
          counted(value.byteLength);
        }
      } catch {
        // Ends the response where it is: the browser sees its stream break off, as behind a proxy that dropped it.
        controller.close();
      }
    },
    cancel: () => abort.abort(),
  });
}

/** Agrees to the subprotocol the browser asked for, as webtalk would, so the page believes it is talking to it. */
function protocolOf(request: Request): Record<string, string> {
  const asked = request.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
  return asked ? { "Sec-WebSocket-Protocol": asked } : {};
}
