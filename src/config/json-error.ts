// Where a JSON text goes wrong. Bun's JSON.parse says only "Expected '}'", with no position; a config
// file with twenty keys needs `webtalk.ini:7:3: expected "," or "}"` to be fixed in one look.
// A small strict scanner (RFC 8259) run only after JSON.parse has refused the text.

export interface JsonError {
  /** 1-based, counted in lines and characters as an editor shows them. */
  line: number;
  column: number;
  message: string;
}

/** The first syntax error in `text`, or a key repeated within one object; undefined when neither. */
export function findJsonError(text: string): JsonError | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.skipSpace();
    scanner.value();
    scanner.skipSpace();
    if (scanner.at < text.length) scanner.fail("expected the end of the file after the top-level value");
    return undefined;
  } catch (error) {
    if (!(error instanceof SyntaxFailure)) throw error;
    return { ...position(text, error.at), message: error.message };
  }
}

/**
 * The first key the top-level object gives twice (`{"queue": 5, "queue": 6}`), where it is given the
 * second time: JSON.parse keeps the last silently. Only for text JSON.parse accepted.
 */
export function findDuplicateKey(text: string): (JsonError & { key: string }) | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.skipSpace();
    scanner.value();
  } catch {
    return undefined;
  }
  const seen = new Set<string>();
  for (const { key, at } of scanner.topKeys) {
    if (seen.has(key)) return { ...position(text, at), message: `"${key}" is given twice`, key };
    seen.add(key);
  }
  return undefined;
}

class SyntaxFailure extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

class Scanner {
  at = 0;
  /** Keys of the top-level object, in order, with where each starts. */
  readonly topKeys: { key: string; at: number }[] = [];
  private depth = 0;
  constructor(private readonly text: string) {}

  value(): void {
    const c = this.text[this.at];
    if (c === "{") return this.object();
    if (c === "[") return this.array();
    if (c === '"') return this.string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
    for (const word of ["true", "false", "null"]) {
      if (this.text.startsWith(word, this.at)) return void (this.at += word.length);
    }
    this.fail(c === undefined ? "unexpected end of file, expected a value" : `expected a value, found ${describe(c)}`);
  }

  object(): void {
    this.depth++;
    try {
      this.members();
    } finally {
      this.depth--;
    }
  }

  private members(): void {
    this.at++;
    this.skipSpace();
    if (this.text[this.at] === "}") return void this.at++;
    const keys = new Set<string>();
    for (;;) {
      if (this.text[this.at] !== '"') this.fail(`expected a key in double quotes, found ${this.found()}`);
      const start = this.at;
      this.string();
      // Valid JSON, but JSON.parse keeps only the last of two equal keys: a setting given twice.
      const key = JSON.parse(this.text.slice(start, this.at)) as string;
      if (keys.has(key)) this.fail(`key ${JSON.stringify(key)} given twice in one object: keep one`, start - this.at);
      keys.add(key);
      this.skipSpace();
      this.expect(":", `expected ":" after the key, found ${this.found()}`);
      this.skipSpace();
      this.value();
      this.skipSpace();
      const c = this.text[this.at++];
      if (c === "}") return;
      if (c !== ",") this.fail(`expected "," or "}", found ${this.found(-1)}`, -1);
      this.skipSpace();
    }
  }

  array(): void {
    this.at++;
    this.skipSpace();
    if (this.text[this.at] === "]") return void this.at++;
    for (;;) {
      this.value();
      this.skipSpace();
      const c = this.text[this.at++];
      if (c === "]") return;
      if (c !== ",") this.fail(`expected "," or "]", found ${this.found(-1)}`, -1);
      this.skipSpace();
    }
  }

  string(): void {
    const start = this.at++;
    for (;;) {
      const c = this.text[this.at];
      if (c === undefined) this.fail("unterminated string", start - this.at);
      if (c === '"') return void this.at++;
      if (c < " ") this.fail("control character in a string (write \\n, \\t…)");
      if (c === "\\") {
        const escape = this.text[this.at + 1];
        if (escape === "u" && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.at + 2, this.at + 6))) this.at += 6;
        else if (escape !== undefined && '"\\/bfnrt'.includes(escape)) this.at += 2;
        else this.fail("invalid escape in a string");
      } else this.at++;
    }
  }

  number(): void {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.at));
    if (!match) this.fail("invalid number");
    this.at += match[0].length;
  }

  skipSpace(): void {
    while (this.at < this.text.length && " \t\n\r".includes(this.text[this.at]!)) this.at++;
  }

  expect(char: string, message: string): void {
    if (this.text[this.at] !== char) this.fail(message);
    this.at++;
  }

  /** What stands at the position (offset by `delta`), as a message shows it. */
  found(delta = 0): string {
    const c = this.text[this.at + delta];
    return c === undefined ? "the end of the file" : describe(c);
  }

  fail(message: string, delta = 0): never {
    throw new SyntaxFailure(message, this.at + delta);
  }
}

function describe(c: string): string {
  return c === "\n" || c === "\r" ? "a line break" : `'${c}'`;
}

function position(text: string, at: number): { line: number; column: number } {
  const before = text.slice(0, Math.min(at, text.length));
  const lines = before.split(/\r\n|\n|\r/);
  return { line: lines.length, column: [...lines.at(-1)!].length + 1 };
}
