// Hostile browsers on the public port: garbage HTTP, garbage upgrade handshakes, valid upgrades followed by
// hand-made WebSocket frames (bad opcodes, reserved bits, unmasked, lying or huge lengths, invalid UTF-8),
// real WebSocket clients sending random logins, text, binary and oversize messages, and vanishing clients.

import { Browser } from "../helpers.ts";
import type { Random } from "../random.ts";
import { RawConnection } from "../raw.ts";
import type { FuzzTarget, Tally } from "./target.ts";

const CLOSE_WAIT_MS = 5_000;
const V2 = "webtalk.v2";
/** Close codes a browser may see: the README's table, plus the WebSocket layer's own. */
const KNOWN_CLOSE_CODES = new Set([1000, 1002, 1005, 1006, 1007, 1009, 4001, 4002, 4003, 4004, 4005]);

type Scenario = (target: FuzzTarget, r: Random, tally: Tally) => Promise<void>;

/** Runs one randomly chosen hostile client against the public port, start to finish. */
export async function fuzzPublicOnce(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const [name, scenario] = r.pick(SCENARIOS);
  tally.count(`public ${name}`);
  await scenario(target, r, tally);
}

const SCENARIOS: [string, Scenario][] = [
  ["garbage http", garbageHttp],
  ["garbage upgrade", garbageUpgrade],
  ["raw frames", rawFrames],
  ["websocket client", websocketClient],
  ["vanish", vanish],
];

/** Noise, or an HTTP request with something wrong in every part of it. */
async function garbageHttp(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const conn = await open(target, tally);
  if (!conn) return;
  if (r.chance(0.3)) conn.write(r.bytes(r.between(1, 8192)));
  else {
    const method = r.pick(["GET", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "G\0T", "", "BREW", "get"]);
    const path = r.pick(["/", "/webtalk", "*", "", "/%00", "/../../etc/passwd", `/${"a".repeat(r.int(20_000))}`, "http://x/webtalk"]);
    const version = r.pick(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1", "", "SPDY"]);
    const headers = Array.from({ length: r.int(8) }, () => randomHeader(r)).join("");
    const body = r.chance(0.3) ? r.pick(["Content-Length: 5\r\n\r\nabc", "Transfer-Encoding: chunked\r\n\r\nzz\r\n", "Content-Length: -1\r\n\r\n"]) : "\r\n";
    conn.write(`${method} ${path} ${version}\r\nHost: 127.0.0.1\r\n${headers}${body}`);
  }
  await finish(conn, r, tally);
}

/** A request to the WebSocket path with one or more handshake headers wrong. */
async function garbageUpgrade(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const conn = await open(target, tally);
  if (!conn) return;
  const lines = handshakeLines(target, r);
  for (let n = r.between(1, 3); n > 0; n--) {
    const at = r.int(lines.length);
    const wrong = r.pick([
      "Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 99999999999", "Sec-WebSocket-Version: abc",
      "Sec-WebSocket-Key: ", "Sec-WebSocket-Key: x", `Sec-WebSocket-Key: ${"A".repeat(5000)}`, "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==",
      "Upgrade: webfoo", "Upgrade: ", "Connection: close", "Connection: keep-alive", "Sec-WebSocket-Protocol: \0",
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99", "no colon here", ": empty name",
      `X-Big: ${"b".repeat(r.int(100_000))}`, "",
    ]);
    if (at === 0) lines[0] = r.pick(["POST /webtalk HTTP/1.1", "GET /webtalk HTTP/1.0", "GET /webtalk/ HTTP/1.1", "GET //webtalk HTTP/1.1", "GET /webtalk?x=%zz HTTP/1.1", "GET /WEBTALK HTTP/1.1"]);
    else if (r.chance(0.5)) lines[at] = wrong;
    else lines.splice(at, 1);
  }
  const request = `${lines.join(r.chance(0.9) ? "\r\n" : "\n")}\r\n\r\n`;
  const bytes = new TextEncoder().encode(request);
  await conn.writeSplit(bytes, Array.from({ length: r.int(4) }, () => r.int(bytes.length)));
  if (r.chance(0.5)) conn.write(wsFrames(target, r));
  await finish(conn, r, tally);
}

/** A valid upgrade, then frames no browser should send. */
async function rawFrames(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const conn = await open(target, tally);
  if (!conn) return;
  conn.write(`${handshakeLines(target, r).join("\r\n")}\r\n\r\n`);
  await conn.until(() => conn.text().includes("\r\n\r\n"), CLOSE_WAIT_MS);
  if (!conn.text().startsWith("HTTP/1.1 101")) tally.violation(`a valid upgrade answered ${JSON.stringify(conn.text().slice(0, 40))}`);
  const frames = wsFrames(target, r);
  await conn.writeSplit(frames, Array.from({ length: r.int(5) }, () => r.int(frames.length)));
  await finish(conn, r, tally);
}

/**
 * A real WebSocket client, plain or webtalk.v2: a random login (with v2, often a resume with hostile
 * positions), then random text and binary, some over --max-message.
 */
async function websocketClient(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const v2 = r.chance(0.5);
  let browser: Browser;
  try {
    browser = await Browser.open(target.publicUrl, v2 ? r.pick([V2, [V2, "chat"], ["chat", V2]]) : undefined);
  } catch {
    return tally.count("public websocket open failed");
  }
  tally.connections++;
  const resume = v2 && r.chance(0.6);
  if (resume) tally.count("public v2 resume login");
  const token = resume ? resumeToken(target, r) : r.pick([
    r.pick(target.tokens),
    `${r.pick(target.goodUsers)}!${"A".repeat(24)}`, // a well-behaved user with a wrong salt: must not disturb it
    `${r.pick(target.users)}!wrong`,
    `${r.pick(target.deadUsers)}!x`,
    randomToken(r),
    "x".repeat(r.between(257, 5000)),
  ]);
  browser.send(r.chance(0.9) ? token : new TextEncoder().encode(token));
  for (let n = r.int(20); n > 0 && browser.ws.readyState === WebSocket.OPEN; n--) {
    const size = r.chance(0.1) ? r.between(4000, 6000) : r.int(300);
    browser.send(r.chance(0.7) ? "y".repeat(size) : r.bytes(size));
    if (r.chance(0.3)) await Bun.sleep(r.int(5));
  }
  if (r.chance(0.3)) browser.ws.terminate();
  else browser.close();
  try {
    const { code } = await browser.closedWithin("the fuzz browser's close");
    if (!KNOWN_CLOSE_CODES.has(code)) tally.violation(`a browser was closed with ${code}`);
  } catch (error) {
    tally.violation((error as Error).message);
  }
}

/** `ID!SALT!EPOCH!POSITIONS` with a real or made-up token and epoch, and positions from plausible to absurd. */
function resumeToken(target: FuzzTarget, r: Random): string {
  const source = () => r.pick(["u", "u", String(r.pick(target.channels)), "1", String(r.int(1e6)), "9".repeat(16), "x", "", "-1", "u1"]);
  const offset = () => r.pick(["0", "1", String(r.int(100)), String(r.int(5000)), "9".repeat(16), "99999999999999999", "-1", "", "1.5", "00000000000000001"]);
  const positions = Array.from({ length: r.int(8) }, () => (r.chance(0.9) ? `${source()}:${offset()}` : r.pick([":", "u", "u::1", ",", "u:1:2"])));
  const epoch = r.pick([target.epoch, target.epoch, target.epoch, "", "x", "!", "é", "A".repeat(60)]);
  const token = r.chance(0.8) ? r.pick(target.tokens) : `${r.pick(target.goodUsers)}!${"B".repeat(24)}`;
  return `${token}!${epoch}!${positions.join(r.chance(0.9) ? "," : ";")}${r.chance(0.1) ? "!extra" : ""}`;
}

/** Connects and goes away: at once, mid-request, or mid-frame. */
async function vanish(target: FuzzTarget, r: Random, tally: Tally): Promise<void> {
  const conn = await open(target, tally);
  if (!conn) return;
  const what = r.int(3);
  if (what === 1) conn.write(`GET ${target.path} HTTP/1.1\r\nUpgrade: webso`);
  if (what === 2) {
    conn.write(`${handshakeLines(target, r).join("\r\n")}\r\n\r\n`);
    conn.write(Uint8Array.of(0x81, 0xfe, 0x10)); // a masked text frame header, cut in its length
  }
  if (r.chance(0.5)) conn.terminate();
  else conn.end();
}

// ---- inputs ----

function handshakeLines(target: FuzzTarget, r: Random): string[] {
  return [
    `GET ${target.path} HTTP/1.1`,
    `Host: 127.0.0.1:${target.publicPort}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${Buffer.from(r.bytes(16)).toString("base64")}`,
    "Sec-WebSocket-Version: 13",
    ...(r.chance(0.3) ? [`Sec-WebSocket-Protocol: ${r.pick([V2, `chat, ${V2}`, `${V2},${V2}`, "webtalk.v3", " , ,", V2.toUpperCase()])}`] : []),
  ];
}

/** A run of WebSocket frames, each wrong in some way or not, sometimes led by a login. */
function wsFrames(target: FuzzTarget, r: Random): Uint8Array {
  const frames: Uint8Array[] = [];
  if (r.chance(0.4)) frames.push(wsFrame(r, { opcode: 1, payload: new TextEncoder().encode(r.chance(0.5) ? r.pick(target.tokens) : randomToken(r)) }));
  for (let n = r.between(1, 12); n > 0; n--) {
    const k = r.int(10);
    if (k < 3) frames.push(r.bytes(r.between(1, 300)));
    else {
      const payload = r.chance(0.5) ? r.bytes(r.int(k < 5 ? 7000 : 200)) : new TextEncoder().encode("z".repeat(r.int(200)));
      frames.push(
        wsFrame(r, {
          opcode: r.chance(0.6) ? r.pick([0, 1, 2, 8, 9, 10]) : r.int(16),
          payload,
          fin: r.chance(0.8),
          rsv: r.chance(0.15) ? r.between(1, 7) : 0,
          masked: r.chance(0.9),
          declared: r.chance(0.15) ? r.pick([payload.length + r.between(1, 1000), 2 ** 32, Number.MAX_SAFE_INTEGER]) : undefined,
        }),
      );
    }
  }
  return Buffer.concat(frames);
}

interface FrameSpec {
  opcode: number;
  payload: Uint8Array;
  fin?: boolean;
  rsv?: number;
  masked?: boolean;
  /** A length to announce instead of the payload's own (a lie, or absurdly large). */
  declared?: number;
}

function wsFrame(r: Random, spec: FrameSpec): Uint8Array {
  const { opcode, payload, fin = true, rsv = 0, masked = true } = spec;
  const length = spec.declared ?? payload.length;
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const maskBit = masked ? 0x80 : 0;
  // Sometimes a longer length encoding than needed: legal-looking, but not minimal.
  const form = length < 126 && r.chance(0.9) ? 7 : length < 65536 && r.chance(0.9) ? 16 : 64;
  if (form === 7) head.push(maskBit | length);
  else if (form === 16) head.push(maskBit | 126, (length >> 8) & 0xff, length & 0xff);
  else {
    head.push(maskBit | 127);
    const big = BigInt(length);
    for (let i = 7; i >= 0; i--) head.push(Number((big >> BigInt(8 * i)) & 0xffn));
  }
  const key = r.bytes(4);
  const body = Uint8Array.from(payload, (b, i) => (masked ? b ^ key[i % 4]! : b));
  return Buffer.concat([Uint8Array.from(head), masked ? key : new Uint8Array(0), body]);
}

function randomHeader(r: Random): string {
  return r.pick([
    `X-${r.int(1000)}: ${"v".repeat(r.int(10_000))}\r\n`,
    "Content-Length: 99999999999999999999\r\n",
    "Transfer-Encoding: chunked, identity\r\n",
    "Host: \r\n",
    "bad header line\r\n",
    `${String.fromCharCode(r.int(256))}: \0\r\n`,
    "Connection: Upgrade\r\nUpgrade: websocket\r\n",
    "\r\n\r\n",
  ]);
}

function randomToken(r: Random): string {
  return r.pick([
    "", "!", "1!", "!x", "-1!x", "0!x", "1e3!x", "99999999999999999!x", `${r.int(1e6)}!${"s".repeat(r.int(40))}`,
    "١!x", "1!x!y", "\0", `${r.int(100)} !x`,
  ]);
}

// ---- connections ----

async function open(target: FuzzTarget, tally: Tally): Promise<RawConnection | undefined> {
  try {
    const conn = await RawConnection.open(target.publicPort);
    tally.connections++;
    return conn;
  } catch (error) {
    tally.count(`public connect failed: ${(error as Error).message}`);
    return undefined;
  }
}

/** Waits briefly for the server's answer or close, checks it is HTTP, then leaves (FIN or vanish). */
async function finish(conn: RawConnection, r: Random, tally: Tally): Promise<void> {
  if (r.chance(0.5)) conn.end();
  await conn.until(() => conn.isClosed, r.between(50, 400));
  const text = conn.text();
  if (conn.bytesIn > 0 && !text.startsWith("HTTP/1.1 ")) tally.violation(`the public port answered ${JSON.stringify(text.slice(0, 40))}`);
  conn.terminate();
}
