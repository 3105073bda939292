// An HTTP relay that buffers responses as nginx does with `proxy_buffering on`: bytes from the server
// are held until `bufferBytes` have gathered (or the response ends), unless the response says
// `X-Accel-Buffering: no` and the relay honours it (nginx does; `honourAccel: false` is nginx with
// `proxy_ignore_headers X-Accel-Buffering`, or another buffering proxy). Like `proxy_read_timeout`, a
// response from which nothing was read for `readTimeoutMs` is cut.

export interface BufferingOptions {
  bufferBytes: number;
  readTimeoutMs: number;
  honourAccel: boolean;
}

export class BufferingProxy {
  readonly #server: ReturnType<typeof Bun.serve>;
  /** Responses cut for the read timeout. */
  timedOut = 0;

  constructor(
    readonly targetPort: number,
    readonly options: BufferingOptions,
  ) {
    this.#server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: (request) => this.#relay(request) });
  }

  get port(): number {
    return this.#server.port!;
  }

  stop(): void {
    void this.#server.stop(true);
  }

  async #relay(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete("host");
    const upstream = await fetch(`http://127.0.0.1:${this.targetPort}${url.pathname}${url.search}`, { headers, decompress: false } as RequestInit);
    const unbuffered = this.options.honourAccel && upstream.headers.get("x-accel-buffering") === "no";
    const body = upstream.body && this.#buffered(upstream.body, unbuffered ? 0 : this.options.bufferBytes);
    return new Response(body, { status: upstream.status, headers: upstream.headers });
  }

  #buffered(body: ReadableStream<Uint8Array>, bufferBytes: number): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    const { readTimeoutMs } = this.options;
    let held: Uint8Array[] = [];
    let heldBytes = 0;
    const take = (): Uint8Array => {
      const out = Buffer.concat(held);
      held = [];
      heldBytes = 0;
      return out;
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          let timer: Timer | undefined;
          const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), readTimeoutMs)));
          const next = await Promise.race([reader.read(), timeout]).catch(() => ({ done: true as const, value: undefined }));
          clearTimeout(timer);
          if (next === "timeout") {
            this.timedOut++;
            void reader.cancel();
            // What the proxy held is lost with the connection, as when nginx gives up on the upstream.
            controller.error(new Error("upstream timed out"));
            return;
          }
          if (next.done) {
            if (heldBytes > 0) controller.enqueue(take());
            controller.close();
            return;
          }
          held.push(next.value);
          heldBytes += next.value.byteLength;
          if (heldBytes >= bufferBytes) {
            controller.enqueue(take());
            return;
          }
        }
      },
      cancel: () => void reader.cancel(),
    });
  }
}
