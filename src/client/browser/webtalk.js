// webtalk browser client: logs in with ID!SALT, hands each message to the page, and reconnects after
// network loss with jittered exponential backoff, except after a close code that makes retrying pointless.
// It speaks webtalk.v2 when the server offers it: messages are numbered per source, a reconnection
// resumes after the last one seen, and what could not be recovered is reported as a gap.
// Where WebSocket is blocked (some proxies), it receives the same v2 stream as Server-Sent Events.
// No dependencies. Served by webtalk as an ES module at /webtalk.js and as a classic script at
// /webtalk.global.js (which defines `webtalk.connect`). Types: /webtalk.d.ts.

/** Close codes after which the same ID!SALT cannot log in again: login failed, replaced, killed, kicked. */
export const FINAL_CODES = Object.freeze([4001, 4002, 4004, 4005]);

const V2 = "webtalk.v2";
/** A 4002 whose reason starts so came from the server's --sessions limit: another tab of this user took this one's place. */
const SESSION_LIMIT = "session limit";
/** With transport "auto": a WebSocket that brings no message this long (ms) counts as blocked. */
const FALLBACK_AFTER = 3000;
/** The longest v2 login the server takes (its MAX_V2_LOGIN_BYTES); sources past it are left out, oldest first. */
const MAX_V2_LOGIN = 16_384;

/**
 * Connects to webtalk's WebSocket endpoint and logs in as `token` ("ID!SALT").
 * `url` may be absolute (ws:, wss:, http:, https:) or a path on the page's own host ("/webtalk").
 */
export function connect(url, token, options = {}) {
  const { onMessage, onOpen, onClose, onGap } = options;
  const minDelay = options.minDelay ?? 500;
  const maxDelay = options.maxDelay ?? 30000;
  const stableAfter = options.stableAfter ?? 5000;
  const protocols = options.protocol === "v1" ? [] : [V2];
  const target = toWebSocketUrl(url);
  // This page's name for itself: a server that had to cut it when another tab replaced it answers its
  // next login with the 4002 it missed, so it stops rather than taking the other tab's place.
  const tabTarget = withTab(target, Math.random().toString(36).slice(2, 12));
  // SSE is webtalk.v2 only, and needs the browser's EventSource.
  const sseAllowed = protocols.length > 0 && typeof EventSource === "function";
  const transport = sseAllowed ? (options.transport ?? "auto") : "websocket";
  const fallbackAfter = options.fallbackAfter ?? FALLBACK_AFTER;
  // With "auto", the transport alternates after attempts that brought no message, until one does; then
  // it stays: a network that carried it once will again, and a restarting server must not move pages.
  let useSse = transport === "sse";
  let proven = transport !== "auto";
  let received = false;
  let fallbackTimer;

  let ws;
  let timer;
  let attempt = 0;
  let openedAt = 0;
  let stopped = false;
  const status = { state: "connecting", closeCode: undefined, closeReason: "", protocol: "" };
  // v2 resume point: the server's epoch and the last offset seen per source ("u" or a channel ID).
  let epoch = options.resume?.epoch;
  const positions = new Map(Object.entries(options.resume?.positions ?? {}));

  const receive = (text) => {
    if (status.protocol !== V2) return onMessage?.(text, undefined);
    if (text.startsWith("#")) return notice(text);
    const match = /^(u|\d+):(\d+)!/.exec(text);
    if (!match) return;
    const [head, source, digits] = match;
    const offset = Number(digits);
    const last = positions.get(source);
    if (last !== undefined && offset !== last + 1) {
      // Repeated, late or skipped ahead: the page's copy of this source has a hole or is out of order,
      // which only a reload from its backend can mend. A repeated or late message is then not handed
      // on (it would come after newer ones, or twice); one that skipped ahead is, and counts from here.
      onGap?.(source);
      if (offset <= last) return;
    }
    // Most recent last: a login that cannot list every source keeps the most recent ones.
    positions.delete(source);
    positions.set(source, offset);
    onMessage?.(text.slice(head.length), { source, offset });
  };

  const notice = (text) => {
    const space = text.indexOf(" ");
    const name = text.slice(1, space);
    const value = text.slice(space + 1);
    if (name === "epoch") {
      // A new epoch means the server restarted: offsets start again, old positions mean nothing.
      if (epoch !== undefined && value !== epoch) positions.clear();
      epoch = value;
    } else if (name === "at") {
      startAt(value);
    } else if (name === "gap") {
      positions.delete(value);
      onGap?.(value);
    }
  };

  // Where the login started the sources this page had no position for: kept as positions, so a page
  // that hears nothing from a source still lists it when it resumes, and gets what it missed. First in
  // the map: never heard from, they are the first a long resume list leaves out.
  const startAt = (list) => {
    const starts = new Map();
    for (const item of list.split(",")) {
      const colon = item.indexOf(":");
      const source = item.slice(0, colon);
      const offset = Number(item.slice(colon + 1));
      if (colon > 0 && !(positions.get(source) >= offset)) starts.set(source, offset);
    }
    for (const [source, offset] of positions) if (!starts.has(source)) starts.set(source, offset);
    positions.clear();
    for (const [source, offset] of starts) positions.set(source, offset);
  };

  const login = () => {
    if (status.protocol !== V2 || epoch === undefined || positions.size === 0) return token;
    const head = `${token}!${epoch}!`;
    const listed = [];
    let bytes = head.length;
    // Room for "+," too: a list that leaves sources out says so, and the server tells onGap for each.
    let left = false;
    for (const [source, offset] of [...positions].reverse()) {
      const item = `${source}:${offset}`;
      if (bytes + item.length + 3 > MAX_V2_LOGIN) {
        left = true;
        break;
      }
      listed.push(item);
      bytes += item.length + 1;
    }
    if (left) listed.push("+");
    return head + listed.reverse().join(",");
  };

  /** After an attempt ended: with "auto", one that brought nothing switches transports. */
  const switchTransport = () => {
    clearTimeout(fallbackTimer);
    if (received && !proven) proven = true;
    const switching = !proven && transport === "auto";
    if (switching) useSse = !useSse;
    received = false;
    return switching;
  };

  const open = () => {
    timer = undefined;
    status.state = "connecting";
    if (useSse) return openSse();
    ws = new WebSocket(tabTarget, protocols);
    if (!proven) {
      // A proxy may accept the upgrade and then pass nothing: no #epoch within a few seconds is a failure too.
      fallbackTimer = setTimeout(() => {
        if (!received && ws) ws.close(1000, "no message; trying Server-Sent Events");
      }, fallbackAfter);
    }
    ws.onopen = () => {
      openedAt = Date.now();
      // An older server that does not offer v2 answers without a subprotocol: speak v1 to it.
      status.protocol = ws.protocol;
      // A server without webtalk.v2 has no SSE endpoint either, and answers a good login with silence.
      if (status.protocol !== V2) proven = true;
      ws.send(login());
      // webtalk answers a good login with silence (v1) or #epoch (v2): the page is "open" once it is sent.
      status.state = "open";
      onOpen?.();
    };
    ws.onmessage = (event) => {
      // A message proves the login worked: the next loss starts the backoff from the beginning.
      attempt = 0;
      received = true;
      if (typeof event.data === "string") receive(event.data);
    };
    ws.onclose = (event) => {
      ws = undefined;
      closed(event.code, event.reason);
    };
  };

  /** The same v2 stream as events: `GET {url}/events?login=…`, resuming from this page's positions. */
  const openSse = () => {
    const events = toEventsUrl(target);
    events.searchParams.set("login", token);
    // A refused login then ends with a close event 4001 (final), not a 401 that EventSource cannot read.
    events.searchParams.set("closeEvent", "1");
    const resumeAt = login();
    if (resumeAt !== token) events.searchParams.set("lastEventId", resumeAt.slice(token.length + 1));
    const source = new EventSource(events.href);
    ws = source;
    status.protocol = V2;
    const message = (event) => {
      attempt = 0;
      received = true;
      // The id ends with this event's own SOURCE:OFFSET (the server lists the most recent source last).
      const own = /(?:^|[!,])(u|\d+):(\d+)$/.exec(event.lastEventId);
      if (own) receive(`${own[1]}:${own[2]}!${event.data}`);
    };
    source.onopen = () => {
      openedAt = Date.now();
      status.state = "open";
      onOpen?.();
    };
    source.onmessage = message;
    source.addEventListener("epoch", (event) => {
      received = true;
      notice(`#epoch ${event.data}`);
    });
    source.addEventListener("at", (event) => notice(`#at ${event.data}`));
    source.addEventListener("gap", (event) => notice(`#gap ${event.data}`));
    // A final condition (login failed, replaced, killed, kicked): the server says so, then ends the stream.
    source.addEventListener("close", (event) => {
      const space = event.data.indexOf(" ");
      end(Number(event.data.slice(0, space)), event.data.slice(space + 1));
    });
    // The stream broke or was refused: EventSource would retry by itself from its own last id; this
    // client retries from its positions instead, with the same backoff (and fallback) as a WebSocket.
    source.onerror = () => end(1006, "");
    const end = (code, reason) => {
      if (ws !== source) return;
      source.close();
      ws = undefined;
      closed(code, reason);
    };
  };

  const closed = (code, reason) => {
    status.closeCode = code;
    status.closeReason = reason;
    if (openedAt !== 0 && Date.now() - openedAt >= stableAfter) attempt = 0;
    openedAt = 0;
    const final = stopped || FINAL_CODES.includes(code);
    const switched = !final && switchTransport();
    let reconnectIn;
    if (final) {
      status.state = "closed";
      removeOnlineListener();
    } else {
      // Full jitter: a random delay up to a ceiling that doubles per failed attempt, up to maxDelay,
      // so a restarted server is not hit by every browser at the same instant. A blocked WebSocket
      // falls back to Server-Sent Events at once.
      reconnectIn = switched && useSse ? 0 : Math.round(Math.random() * Math.min(maxDelay, minDelay * 2 ** attempt));
      attempt++;
      status.state = "waiting";
      timer = setTimeout(open, reconnectIn);
    }
    onClose?.({ code, reason, final, reconnectIn, sessionLimit: isSessionLimit(code, reason) || undefined });
  };

  // When the browser says the network is back, retry now rather than at the end of a long wait.
  const retryNow = () => {
    if (status.state !== "waiting") return;
    clearTimeout(timer);
    open();
  };
  const canListen = typeof addEventListener === "function" && typeof removeEventListener === "function";
  if (canListen) addEventListener("online", retryNow);
  const removeOnlineListener = () => {
    if (canListen) removeEventListener("online", retryNow);
  };

  open();

  return {
    /** "connecting", "open", "waiting" (to reconnect) or "closed" (for good). */
    get state() {
      return status.state;
    },
    /** "webtalk.v2" when the server numbers messages, "" for the original plain protocol. */
    get protocol() {
      return status.protocol;
    },
    /** "websocket" or "sse": the transport of the current (or next) attempt. */
    get transport() {
      return useSse ? "sse" : "websocket";
    },
    /** The code of the last close, if any (4001…4006 are webtalk's; see FINAL_CODES). */
    get closeCode() {
      return status.closeCode;
    },
    get closeReason() {
      return status.closeReason;
    },
    /** Where a v2 connection would resume: keep it (sessionStorage) to resume after a page reload too. */
    get resume() {
      return epoch === undefined ? undefined : { epoch, positions: Object.fromEntries(positions) };
    },
    /** Closes the connection and stops reconnecting. */
    close() {
      stopped = true;
      removeOnlineListener();
      clearTimeout(timer);
      clearTimeout(fallbackTimer);
      if (ws instanceof WebSocket) ws.close(1000, "closed by the page");
      else if (ws) {
        // An EventSource has no close event: the page hears the same as for a WebSocket.
        ws.close();
        ws = undefined;
        closed(1000, "closed by the page");
      } else status.state = "closed";
    },
  };
}

/** The SSE endpoint beside a WebSocket endpoint: ws://host/webtalk → http://host/webtalk/events. */
function toEventsUrl(webSocketUrl) {
  const events = new URL(webSocketUrl);
  events.protocol = events.protocol === "wss:" ? "https:" : "http:";
  events.pathname = `${events.pathname.replace(/\/$/, "")}/events`;
  return events;
}

function withTab(webSocketUrl, tab) {
  const named = new URL(webSocketUrl);
  named.searchParams.set("tab", tab);
  return named.href;
}

function toWebSocketUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, "ws");
  if (typeof location === "undefined") throw new TypeError(`webtalk: ${url} is not an absolute ws:// or wss:// URL`);
  const absolute = new URL(url, location.href);
  absolute.protocol = absolute.protocol === "https:" ? "wss:" : "ws:";
  return absolute.href;
}

/** Whether a close was the server's --sessions limit (4002 "session limit: …"), not a login elsewhere. */
function isSessionLimit(code, reason) {
  return code === 4002 && reason.startsWith(SESSION_LIMIT);
}
