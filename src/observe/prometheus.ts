// Renders the server's figures in Prometheus' text exposition format (version 0.0.4).
// Counters end in _total, units are in the names, and every family has its HELP and TYPE lines.

import { readdirSync, readFileSync } from "node:fs";
import type { Histogram } from "./histogram.ts";
import type { StateCounts } from "../state/state.ts";
import type { LoginResult, Metrics } from "./metrics.ts";

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One scrape's figures: the counters, plus gauges read from the live server at scrape time. */
export interface Sample {
  metrics: Metrics;
  version: string;
  /** Open WebSocket connections, logged in or not. */
  browsersConnected: number;
  /** Users with a logged-in browser. */
  usersOnline: number;
  /** Users, channels and held messages; undefined while the state backend does not answer. */
  counts: StateCounts | undefined;
  listeners: number;
}

type Labels = Record<string, string>;

interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  /** Labels, value, and the name's suffix for a histogram's `_bucket`, `_sum` and `_count` lines. */
  samples: [Labels, number, suffix?: string][];
}

export function renderPrometheus(sample: Sample): string {
  const { metrics: m, counts } = sample;
  const families: Family[] = [
    gauge("webtalk_build_info", "Always 1; the labels say which webtalk and which Bun run.", 1, {
      version: sample.version,
      bun: Bun.version,
    }),
    gauge("webtalk_uptime_seconds", "Seconds since the server started.", (Date.now() - m.startedAt) / 1000),
    gauge("webtalk_browsers_connected", "Open WebSocket connections, logged in or not.", sample.browsersConnected),
    gauge("webtalk_users_online", "Users with a logged-in browser.", sample.usersOnline),
    ...(counts
      ? [
          gauge("webtalk_users", "Users that exist.", counts.users),
          gauge("webtalk_channels", "Channels that exist, the global channel included.", counts.channels),
          gauge("webtalk_held_messages", "Messages held now for users with no browser connected.", counts.held),
        ]
      : []),
    {
      name: "webtalk_logins_total",
      type: "counter",
      help: "Browser logins by result: ok, failed, duplicate (refused by --duplicate reject), timeout.",
      samples: (Object.keys(m.logins) as LoginResult[]).map((result) => [{ result }, m.logins[result]]),
    },
    counter("webtalk_messages_delivered_total", "Messages handed to browsers (a shout once per online member).", m.delivered),
    counter("webtalk_messages_held_total", "Whispers held because the user had no browser connected.", m.held),
    counter("webtalk_messages_dropped_total", "Held messages dropped because a user's queue was full.", m.dropped),
    counter("webtalk_messages_replayed_total", "Messages sent again to v2 browsers that resumed from a position.", m.replayed),
    counter("webtalk_replay_gaps_total", "#gap notices: resume positions the replay window no longer covered.", m.gaps),
    counter("webtalk_bus_messages_received_total", "Messages this node received from the cluster bus (Redis pub/sub).", m.busReceived),
    {
      name: "webtalk_control_commands_total",
      type: "counter",
      help: "Control commands run, by command (unknown for names that are not commands) and result (ok or error).",
      samples: [...m.commands.entries()].map(({ labels: [command, result], value }) => [{ command, result }, value]),
    },
    gauge("webtalk_control_connections", "Open control (private port) connections.", m.controlConnections),
    gauge("webtalk_listeners", "Control connections receiving events after [listen].", sample.listeners),
    counter(
      "webtalk_listeners_disconnected_total",
      "Listening control connections cut off because they stopped reading events.",
      m.listenersDisconnected,
    ),
    counter(
      "webtalk_slow_consumers_disconnected_total",
      "Browsers disconnected because they stopped reading while messages piled up for them.",
      m.slowConsumersDisconnected,
    ),
    counter(
      "webtalk_rate_limited_disconnected_total",
      "Browsers disconnected (1008) because they sent messages faster than --max-message-rate.",
      m.tooFastDisconnected,
    ),
    ...latencyFamilies(m),
    ...processFamilies(),
  ];
  return families.map(renderFamily).join("");
}

/** Latency histograms and closes by code (issue 16, ops). */
function latencyFamilies(m: Metrics): Family[] {
  return [
    {
      name: "webtalk_control_command_duration_seconds",
      type: "histogram",
      help: "Seconds from a control command parsed to its reply made, by command (unknown for names that are not commands).",
      samples: [...m.commandSeconds.entries()].flatMap(([command, h]) => histogramSamples(h, { command })),
    },
    {
      name: "webtalk_data_commit_duration_seconds",
      type: "histogram",
      help: "Seconds per write transaction on the --data file, commit included (with --data-sync full, an fsync).",
      samples: histogramSamples(m.dataCommitSeconds, {}),
    },
    {
      name: "webtalk_cluster_delivery_lag_seconds",
      type: "histogram",
      help: "Seconds from the node that took a [whisper] or [shout] to this node handing it to its browsers (with --redis; a clock skew between hosts adds to it).",
      samples: histogramSamples(m.clusterDeliveryLagSeconds, {}),
    },
    {
      name: "webtalk_browser_closes_total",
      type: "counter",
      help: "Browser WebSocket connections closed, by close code (either side's; other for codes outside the known set).",
      samples: m.browserCloses.entries().map(([code, value]) => [{ code }, value]),
    },
  ];
}

function histogramSamples(h: Histogram, labels: Labels): Family["samples"] {
  return [
    ...h.cumulative().map(([le, count]): Family["samples"][number] => [{ ...labels, le }, count, "_bucket"]),
    [labels, h.sum, "_sum"],
    [labels, h.count, "_count"],
  ];
}

/** The standard process_* families every Prometheus client library exports. */
function processFamilies(): Family[] {
  const cpu = process.cpuUsage();
  const families = [
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", process.memoryUsage.rss()),
    counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", (cpu.user + cpu.system) / 1e6),
    gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", processStart),
  ];
  const fds = openFds();
  if (fds !== undefined) families.push(gauge("process_open_fds", "Number of open file descriptors.", fds));
  const maxFds = maxOpenFds();
  if (maxFds !== undefined) families.push(gauge("process_max_fds", "Maximum number of open file descriptors.", maxFds));
  return families;
}

/** The soft limit on open files, from /proc/self/limits ("Max open files  1024  524288  files"). */
function maxOpenFds(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return line ? (line[1] === "unlimited" ? Infinity : Number(line[1])) : undefined;
  } catch {
    return undefined;
  }
}

const processStart = Math.floor(Date.now() / 1000 - process.uptime());

/** Linux only; elsewhere the family is left out rather than reported wrong. */
function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

function gauge(name: string, help: string, value: number, labels: Labels = {}): Family {
  return { name, type: "gauge", help, samples: [[labels, value]] };
}

function counter(name: string, help: string, value: number): Family {
  return { name, type: "counter", help, samples: [[{}, value]] };
}

function renderFamily({ name, type, help, samples }: Family): string {
  let text = `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
  for (const [labels, value, suffix = ""] of samples) text += `${name}${suffix}${renderLabels(labels)} ${renderValue(value)}\n`;
  return text;
}

function renderLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([key, value]) => `${key}="${escapeLabel(value)}"`);
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

function renderValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
