// The control payload's grammar: `[name]`, optionally followed by one space and the data.
// Pure: strings in, values out. Expected failures are values carrying the reply text.

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export interface Command {
  name: string;
  data: string;
}

const MAX_NAME = 32;

/** Splits `[name] data` (the space is required when data follows; a lone trailing space means no data). */
export function parseCommand(payload: string): Parsed<Command> {
  if (payload.charCodeAt(0) !== 0x5b /* [ */) return fail(`malformed command ${quote(payload)}: expected [command]`);
  const close = payload.indexOf("]", 1);
  if (close < 0 || close > MAX_NAME + 1) return fail(`malformed command ${quote(payload)}: expected [command]`);
  const name = payload.slice(1, close);
  if (close + 1 === payload.length) return ok({ name, data: "" });
  if (payload.charCodeAt(close + 1) !== 0x20 /* space */) {
    return fail(`malformed command ${quote(payload)}: expected a space after [${name}]`);
  }
  return ok({ name, data: payload.slice(close + 2) });
}

/** An ID is one or more ASCII digits; `what` names it in the error ("user ID", "channel ID"). */
export function parseId(text: string, what: string): Parsed<number> {
  if (!isDigits(text)) return fail(`invalid ${what} ${quote(text)}: expected digits`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) return fail(beyondIds(text, what));
  return ok(value);
}

/** What an ID or position answers past 2^53 - 1: no ID is that large, and Number would round it. */
const MISSING: Record<string, string> = { "user ID": "no such user", "channel ID": "no such channel" };

/** Echoes the digits as sent (1e+23 names no ID the backend knows), cut short when huge. */
function beyondIds(text: string, what: string): string {
  const shown = text.length <= 40 ? text : quote(text);
  const missing = MISSING[what];
  return missing ? `${missing} ${shown}` : `invalid ${what} ${shown}: IDs stop at ${Number.MAX_SAFE_INTEGER}`;
}

/** Splits at the first `!`: the message is everything after it and may itself contain `!`. */
export function splitBang(data: string, usage: string): Parsed<[string, string]> {
  const bang = data.indexOf("!");
  if (bang < 0) return fail(`missing "!" in ${quote(data)}: expected ${usage}`);
  return ok([data.slice(0, bang), data.slice(bang + 1)]);
}

/** A channel ID and a user ID separated by `!`, as in `[join] CHAN!USER`. */
export function parseIdPair(data: string, usage: string): Parsed<[number, number]> {
  const split = splitBang(data, usage);
  if (!split.ok) return split;
  const a = parseId(split.value[0], "channel ID");
  if (!a.ok) return a;
  const b = parseId(split.value[1], "user ID");
  if (!b.ok) return b;
  return ok([a.value, b.value]);
}

/** Quotes user input for an error reply, cut short so an error about a huge value stays small. */
export function quote(text: string, max = 40): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut);
}

export function ok<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

export function fail<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
