// A Server-Sent Events browser for tests: a real HTTP request (fetch, streamed body) and a parser of
// text/event-stream written from the HTML specification, independent of the server's encoder.

import { Inbox, within } from "./helpers.ts";

export interface SseEvent {
  /** "message" unless the event named another type. */
  type: string;
  data: string;
  /** The last event id in force after this event (the browser's "last event ID"). */
  id: string;
}

export class SseClient {
  readonly events = new Inbox<SseEvent>();
  /** Every comment line's text (after the colon). */
  readonly comments = new Inbox<string>();
  /** The `retry:` values seen. */
  readonly retries: number[] = [];
  lastEventId = "";
  readonly ended: Promise<void>;
  #abort = new AbortController();

  private constructor(readonly response: Response) {
    this.ended = this.#read();
  }

  /** Opens `url` (`…/events?login=…`); resolves once the response headers are in. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const abort = new AbortController();
    const response = await within(fetch(url, { headers, signal: abort.signal }), `GET ${url}`);
    const client = new SseClient(response);
    client.#abort = abort;
    return client;
  }

  /** Cuts the connection, as a network loss would. */
  cut(): void {
    this.#abort.abort();
  }

  /** The next event of a type other than `epoch` and `at` (the login's notices), or of any type with `all`. */
  async next(what = "an event", all = false): Promise<SseEvent> {
    for (;;) {
      const event = await this.events.next(what);
      if (all || (event.type !== "epoch" && event.type !== "at")) return event;
    }
  }

  async #read(): Promise<void> {
    if (!this.response.ok || !this.response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    let data: string[] = [];
    let type = "";
    try {
      for await (const chunk of this.response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        for (;;) {
          const end = /\r\n|\r|\n/.exec(buffer);
          if (!end) break;
          const line = buffer.slice(0, end.index);
          buffer = buffer.slice(end.index + end[0].length);
          if (line === "") {
            if (data.length > 0) this.events.push({ type: type || "message", data: data.join("\n"), id: this.lastEventId });
            data = [];
            type = "";
            continue;
          }
          if (line.startsWith(":")) {
            this.comments.push(line.slice(1));
            continue;
          }
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "data") data.push(value);
          else if (field === "event") type = value;
          else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
          else if (field === "retry" && /^\d+$/.test(value)) this.retries.push(Number(value));
        }
      }
    } catch {
      // Cut by the test, or by the server.
    }
  }
}

/** The SSE endpoint of a server whose WebSocket URL is `publicUrl`. */
export function eventsUrl(publicUrl: string, token: string, path = "/webtalk/events"): string {
  const url = new URL(publicUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = path;
  url.searchParams.set("login", token);
  return url.href;
}
