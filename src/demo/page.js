// The demo page: gets an ID!SALT from the demo-only endpoint, then lives on /webtalk.js like any page would.
import { connect } from "/webtalk.js";

const REASONS = {
  1001: "server shutting down",
  1006: "connection lost",
  4001: "login failed",
  4002: "replaced by another login",
  4003: "login timeout",
  4004: "user killed",
  4005: "kicked",
};

const $ = (id) => document.getElementById(id);
const login = await (await fetch("/demo/login", { method: "POST" })).json();
$("me").textContent = `user ${login.id}`;
showCommands(login);

connect(login.path, login.token, {
  onOpen: () => status("connected", "open"),
  // With webtalk.v2 each message says where it came from: "u" is a whisper to this user, else a channel.
  onMessage: (text, meta) => {
    const demo = parse(text);
    if (demo?.demo === "presence") return showOnline(demo.online);
    if (demo?.demo === "chat") return add(demo.from === login.id ? "you" : `user ${demo.from}`, demo.text, "chat");
    if (!meta) return add("from the backend", text);
    add(meta.source === "u" ? "whisper to you" : `shout to channel ${meta.source}`, text, meta.source === "u" ? "whisper" : "");
  },
  onGap: (source) =>
    add("webtalk", `Some ${source === "u" ? "whispers" : `messages of channel ${source}`} were missed while away.`, "notice"),
  onClose: ({ code, final, reconnectIn }) => {
    const why = `${REASONS[code] ?? "closed"} (${code})`;
    if (final) {
      status(`closed: ${why}`, "closed");
      add("webtalk", `Connection closed for good: ${why}. Reload the page for a new user.`, "notice");
      showOnline([]);
    } else {
      status(`${why}; reconnecting in ${(reconnectIn / 1000).toFixed(1)} s`, "waiting");
    }
  },
});

$("say").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  await fetch("/demo/say", { method: "POST", body: JSON.stringify({ token: login.token, text }) });
});

function status(text, kind) {
  $("status").textContent = text;
  $("status").className = kind;
}

function add(from, text, kind = "") {
  const item = document.createElement("li");
  item.className = `message ${kind}`;
  const head = document.createElement("div");
  head.className = "from";
  head.textContent = `${from} · ${new Date().toLocaleTimeString()}`;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  item.append(head, body);
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function showOnline(users) {
  $("online").replaceChildren(
    ...users.map((id) => {
      const item = document.createElement("li");
      item.dataset.user = id;
      item.textContent = id === login.id ? `${id} (you)` : String(id);
      if (id === login.id) item.className = "me";
      return item;
    }),
  );
}

function parse(text) {
  if (!text.startsWith('{"demo":')) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// The exact bytes a backend sends: a 5-digit byte length, then the command.
function showCommands({ id, control }) {
  const [host, port] = [control.slice(0, control.lastIndexOf(":")), control.slice(control.lastIndexOf(":") + 1)];
  const frame = (payload) => `${String(new TextEncoder().encode(payload).length).padStart(5, "0")}${payload}`;
  const send = (payload) => `exec 3<>/dev/tcp/${host}/${port}\nprintf '${frame(payload)}' >&3; head -c 22 <&3; echo`;
  $("try-whisper").textContent = send(`[whisper] ${id}!hello, user ${id}`);
  $("try-shout").textContent = send(`[shout] 1!hello, everyone`);
}
