// Server-Sent Events framing of the webtalk.v2 stream (text/event-stream). Pure: strings in, strings out.
//
// An SSE browser is a v2 browser whose frames are events: each message is one event whose `id:` is the
// whole resume position (`EPOCH!SOURCE:OFFSET,…`, the tail of a v2 login), so the browser's automatic
// reconnect, which sends the last id as `Last-Event-ID`, is a v2 resume login.

/** The source a numbered v2 text belongs to, its offset, and the message; undefined for a notice. */
export interface Numbered {
  source: string;
  offset: number;
  text: string;
}

/** Splits `SOURCE:OFFSET!MESSAGE` (resume.ts `numbered`); undefined for anything else. */
export function parseNumbered(v2: string): Numbered | undefined {
  const colon = v2.indexOf(":");
  const bang = v2.indexOf("!", colon + 1);
  if (colon <= 0 || bang <= colon + 1) return undefined;
  const source = v2.slice(0, colon);
  const offset = Number(v2.slice(colon + 1, bang));
  if (!Number.isSafeInteger(offset) || (source !== "u" && !/^\d+$/.test(source))) return undefined;
  return { source, offset, text: v2.slice(bang + 1) };
}

/**
 * The `data:` lines of a message. SSE ends a line at CR, LF or CRLF and the browser joins the lines of
 * one event with LF, so a message with newlines arrives whole (a CR or CRLF arrives as LF).
 */
export function dataLines(text: string): string {
  // Most messages have no line break: two plain scans are far cheaper than the regular expression's.
  if (!text.includes("\n") && !text.includes("\r")) return `data: ${text}\n`;
  return `data: ${text.replace(/\r\n|\r|\n/g, "\ndata: ")}\n`;
}

/** One event: `event:` only for named types (none is `message`, what `EventSource.onmessage` hears). */
export function sseEvent(type: string | undefined, data: string, id: string): string {
  return `${type ? `event: ${type}\n` : ""}id: ${id}\n${data}\n`;
}

/** An event with no id: the browser's resume position stays where it was. */
export function sseNotice(type: string, data: string): string {
  return `event: ${type}\n${dataLines(data)}\n`;
}

/** A comment line: ignored by browsers, it keeps proxies from timing out an idle stream. */
export function sseComment(text = ""): string {
  return `:${text}\n\n`;
}

/** Tells the browser how long to wait before it reconnects. */
export function sseRetry(ms: number): string {
  return `retry: ${Math.round(ms)}\n\n`;
}

/**
 * The resume position as an event id: `EPOCH!u:12,7:340`, sources in the order given (oldest first: the
 * last one is the event's own source). The same text a v2 login carries after `ID!SALT!`. A list that
 * left sources out to stay under its size starts with `+,` (the resume then announces a gap for them).
 */
export function positionId(epoch: string, positions: ReadonlyMap<string, number>, truncated = false): string {
  let list = truncated ? "+" : "";
  for (const [source, offset] of positions) list += list === "" ? `${source}:${offset}` : `,${source}:${offset}`;
  return `${epoch}!${list}`;
}

/** The v2 login for a reconnect: `ID!SALT` and, when the last event id is a position, `!EPOCH!LIST`. */
export function resumeLogin(token: string, lastEventId: string | null): string {
  if (!lastEventId || !/^[A-Za-z0-9_-]+!(\+,)?((u|\d{1,16}):\d{1,16}(,(u|\d{1,16}):\d{1,16})*)?$/.test(lastEventId)) return token;
  return `${token}!${lastEventId}`;
}
