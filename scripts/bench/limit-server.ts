// The limit: the thinnest Bun server that speaks just enough of webtalk's protocol for the benchmark.
// No validation, no state beyond a counter and a Map, nothing else: whatever webtalk costs on top of
// this is what its protocol handling costs. It runs on the same uWebSockets core as webtalk.
//
//   bun scripts/bench/limit-server.ts --public 127.0.0.1:0 --private 127.0.0.1:0
//
// newuser = a counter; login = the first message subscribes to u<ID> and c1; shout = one
// server.publish; whisper = one server.publish on the user's topic; store = one Map set.

import type { Socket } from "bun";

const args = process.argv.slice(2);
const [publicHost, publicPort] = address(flag("--public", "127.0.0.1:0"));
const [privateHost, privatePort] = address(flag("--private", "127.0.0.1:0"));

const kv = new Map<string, string>();
let nextUser = 1;

interface Peer {
  live: boolean;
}

const server = Bun.serve<Peer>({
  hostname: publicHost,
  port: publicPort,
  fetch(request, srv) {
    if (srv.upgrade(request, { data: { live: false } })) return undefined;
    return new Response("not found\n", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    message(ws, message) {
      if (ws.data.live) return;
      ws.data.live = true;
      const text = String(message);
      ws.subscribe(`u${text.slice(0, text.indexOf("!"))}`);
      ws.subscribe("c1");
    },
  },
});

const OK_SENT = "[ok] message sent";

/** A partial frame carried to the next read, and reply text the kernel has not taken yet. */
interface Conn {
  rest: Buffer | undefined;
  queued: string;
}

const listener = Bun.listen<Conn>({
  hostname: privateHost,
  port: privatePort,
  socket: {
    open(socket) {
      socket.data = { rest: undefined, queued: "" };
      socket.setNoDelay(true);
    },
    data(socket, chunk) {
      let bytes = chunk;
      if (socket.data.rest) bytes = Buffer.concat([socket.data.rest, chunk]);
      let out = "";
      let pos = 0;
      while (bytes.length - pos >= 5) {
        const length = Number(bytes.toString("latin1", pos, pos + 5));
        if (bytes.length - pos - 5 < length) break;
        out += frame(run(bytes.toString("utf8", pos + 5, pos + 5 + length)));
        pos += 5 + length;
      }
      socket.data.rest = pos < bytes.length ? bytes.subarray(pos) : undefined;
      if (out.length > 0) write(socket, out);
    },
    drain(socket) {
      const queued = socket.data.queued;
      socket.data.queued = "";
      if (queued.length > 0) write(socket, queued);
    },
  },
});

function run(payload: string): string {
  const close = payload.indexOf("]");
  const name = payload.slice(1, close);
  const data = payload.slice(close + 2);
  const bang = data.indexOf("!");
  switch (name) {
    case "shout":
      server.publish(`c${data.slice(0, bang)}`, data.slice(bang + 1));
      return OK_SENT;
    case "whisper":
      server.publish(`u${data.slice(0, bang)}`, data.slice(bang + 1));
      return OK_SENT;
    case "store": {
      const key = data.slice(0, bang);
      kv.set(key, data.slice(bang + 1));
      return `[ok] stored ${key}`;
    }
    case "newuser":
      return `[ok] ${nextUser++}!limit`;
    default:
      return "[error] unknown";
  }
}

// Replies are ASCII here, so the string length is the byte length.
function frame(payload: string): string {
  return `${String(payload.length).padStart(5, "0")}${payload}`;
}

// A partial write keeps its rest for drain, as any TCP server must; nothing overtakes it.
function write(socket: Socket<Conn>, text: string): void {
  if (socket.data.queued.length > 0) {
    socket.data.queued += text;
    return;
  }
  const written = socket.write(text);
  if (written < text.length) socket.data.queued = text.slice(Math.max(written, 0));
}

console.log(`public  ws://${publicHost}:${server.port}/webtalk`);
console.log(`private tcp://${privateHost}:${listener.port}`);
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));

function flag(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}

function address(text: string): [string, number] {
  const colon = text.lastIndexOf(":");
  return [text.slice(0, colon), Number(text.slice(colon + 1))];
}
