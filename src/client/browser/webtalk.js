// webtalk browser client: logs in with ID!SALT, hands each message to the page, and reconnects after
// network loss with jittered exponential backoff, except after a close code that makes retrying pointless.
// No dependencies. Served by webtalk as an ES module at /webtalk.js and as a classic script at
// /webtalk.global.js (which defines `webtalk.connect`). Types: /webtalk.d.ts.

/** Close codes after which the same ID!SALT cannot log in again: login failed, replaced, killed, kicked. */
export const FINAL_CODES = Object.freeze([4001, 4002, 4004, 4005]);

/**
 * Connects to webtalk's WebSocket endpoint and logs in as `token` ("ID!SALT").
 * `url` may be absolute (ws:, wss:, http:, https:) or a path on the page's own host ("/webtalk").
 */
export function connect(url, token, options = {}) {
  const { onMessage, onOpen, onClose } = options;
  const minDelay = options.minDelay ?? 500;
  const maxDelay = options.maxDelay ?? 30000;
  const stableAfter = options.stableAfter ?? 5000;
  const target = toWebSocketUrl(url);

  let ws;
  let timer;
  let attempt = 0;
  let openedAt = 0;
  let stopped = false;
  const status = { state: "connecting", closeCode: undefined, closeReason: "" };

  const open = () => {
    timer = undefined;
    status.state = "connecting";
    ws = new WebSocket(target);
    ws.onopen = () => {
      openedAt = Date.now();
      ws.send(token);
      // webtalk answers a good login with silence: the page is "open" once the login is sent.
      status.state = "open";
      if (onOpen) onOpen();
    };
    ws.onmessage = (event) => {
      // A message proves the login worked: the next loss starts the backoff from the beginning.
      attempt = 0;
      if (typeof event.data === "string" && onMessage) onMessage(event.data);
    };
    ws.onclose = (event) => {
      ws = undefined;
      status.closeCode = event.code;
      status.closeReason = event.reason;
      if (openedAt !== 0 && Date.now() - openedAt >= stableAfter) attempt = 0;
      openedAt = 0;
      const final = stopped || FINAL_CODES.includes(event.code);
      let reconnectIn;
      if (final) {
        status.state = "closed";
        removeOnlineListener();
      } else {
        // Full jitter: a random delay up to a ceiling that doubles per failed attempt, up to maxDelay,
        // so a restarted server is not hit by every browser at the same instant.
        reconnectIn = Math.round(Math.random() * Math.min(maxDelay, minDelay * 2 ** attempt));
        attempt++;
        status.state = "waiting";
        timer = setTimeout(open, reconnectIn);
      }
      if (onClose) onClose({ code: event.code, reason: event.reason, final, reconnectIn });
    };
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
    /** The code of the last close, if any (4001…4005 are webtalk's; see FINAL_CODES). */
    get closeCode() {
      return status.closeCode;
    },
    get closeReason() {
      return status.closeReason;
    },
    /** Closes the connection and stops reconnecting. */
    close() {
      stopped = true;
      removeOnlineListener();
      clearTimeout(timer);
      if (ws) ws.close(1000, "closed by the page");
      else status.state = "closed";
    },
  };
}

function toWebSocketUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, "ws");
  if (typeof location === "undefined") throw new TypeError(`webtalk: ${url} is not an absolute ws:// or wss:// URL`);
  const absolute = new URL(url, location.href);
  absolute.protocol = absolute.protocol === "https:" ? "wss:" : "ws:";
  return absolute.href;
}
