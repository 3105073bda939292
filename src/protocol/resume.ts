// The opt-in `webtalk.v2` browser protocol: numbered messages, notices, and logins with positions.
// Pure: strings in, values out.

export const V2_PROTOCOL = "webtalk.v2";

/** The source of a user's whisper stream, as the browser sees it; channels are their IDs. */
export const WHISPER_SOURCE = "u";

/** `SOURCE:OFFSET!MESSAGE`: what a v2 browser receives for each whisper and shout. */
export function numbered(source: string, offset: number, text: string): string {
  return `${source}:${offset}!${text}`;
}

export function epochNotice(epoch: string): string {
  return `#epoch ${epoch}`;
}

export function gapNotice(source: string): string {
  return `#gap ${source}`;
}

/**
 * `#at SOURCE:OFFSET,…`: where a login started the sources the browser had no position for. Listed in
 * its next resume, they replay what was sent while it was away, even if it heard nothing from them.
 */
export function atNotice(positions: Iterable<[string, number]>): string {
  const items: string[] = [];
  for (const [source, offset] of positions) items.push(`${source}:${offset}`);
  return `#at ${items.join(",")}`;
}

/** The positions of an `#at` notice's list (`SOURCE:OFFSET,…`). */
export function parseAt(list: string): [string, number][] {
  const out: [string, number][] = [];
  for (const item of list.split(",")) {
    const colon = item.indexOf(":");
    if (colon > 0) out.push([item.slice(0, colon), Number(item.slice(colon + 1))]);
  }
  return out;
}

export interface V2Login {
  /** `ID!SALT`, checked as in v1. */
  token: string;
  /** Absent: live from now. */
  epoch?: string;
  /** Last offset seen per source. */
  positions: Map<string, number>;
  /**
   * The list left sources out to stay under the login's size (an item `+`): every channel of the user
   * it does not name may have missed messages, and is told `#gap` rather than resumed live in silence.
   */
  truncated?: boolean;
}

/** The item a position list carries when it left sources out (see V2Login.truncated). */
export const TRUNCATED = "+";

/** Parses `ID!SALT` or `ID!SALT!EPOCH!POSITIONS`; undefined when malformed. */
export function parseV2Login(text: string): V2Login | undefined {
  const parts = text.split("!");
  if (parts.length === 2) return { token: text, positions: new Map() };
  if (parts.length !== 4) return undefined;
  const [id, salt, epoch, list] = parts as [string, string, string, string];
  if (!/^[A-Za-z0-9_-]+$/.test(epoch)) return undefined;
  const positions = new Map<string, number>();
  let truncated = false;
  for (const item of list === "" ? [] : list.split(",")) {
    if (item === TRUNCATED) {
      truncated = true;
      continue;
    }
    const match = /^(u|\d{1,16}):(\d{1,16})$/.exec(item);
    if (!match) return undefined;
    positions.set(match[1]!, Number(match[2]));
  }
  return truncated ? { token: `${id}!${salt}`, epoch, positions, truncated } : { token: `${id}!${salt}`, epoch, positions };
}
