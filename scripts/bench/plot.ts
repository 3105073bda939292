// Plots as plain SVG written by hand: medians joined by lines, min–max as whiskers. No dependency.

import { median } from "./report.ts";
import type { BenchResults } from "./run.ts";

interface Series {
  name: string;
  color: string;
  points: { x: number; median: number; min: number; max: number }[];
}

const COLORS: Record<string, string> = { webtalk: "#1f77b4", limit: "#ff7f0e", server: "#1f77b4" };
const W = 640;
const H = 380;
const PAD = { left: 78, right: 150, top: 44, bottom: 56 };

/** Every plot the results allow, by file name. */
export function renderPlots(results: BenchResults): Record<string, string> {
  const sizes = results.options.sizes;
  if (sizes.length === 0) return {};
  const plot = (key: (n: number) => string, scale: number) =>
    Object.keys(results.results)
      .filter((s) => s !== "redis")
      .map((server): Series => ({
        name: server,
        color: COLORS[server] ?? "#2ca02c",
        points: sizes.flatMap((n) => {
          const values = (results.results[server] ?? []).map((r) => r[key(n)]).filter((v): v is number => v !== undefined && Number.isFinite(v));
          if (values.length === 0) return [];
          return [{ x: n, median: median(values) * scale, min: Math.min(...values) * scale, max: Math.max(...values) * scale }];
        }),
      }));
  const date = results.date.slice(0, 10);
  return {
    "fanout-throughput.svg": chart(`Fan-out, shouts pipelined: delivered messages/s (${date})`, "million messages / s", sizes, plot((n) => `fanout.${n}.perSec`, 1e-6)),
    "fanout-cpu.svg": chart(`Fan-out: server CPU per delivered message (${date})`, "µs of server CPU", sizes, plot((n) => `fanout.${n}.cpuUsPer`, 1)),
    "fanout-latency.svg": chart(`Fan-out at 100 shouts/s: end-to-end latency p99 (${date})`, "ms", sizes, plot((n) => `rate.${n}.p99Ms`, 1)),
  };
}

function chart(title: string, yLabel: string, sizes: number[], series: Series[]): string {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const top = niceCeiling(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.max))));
  const xs = [...sizes].sort((a, b) => a - b);
  const x = (n: number) => PAD.left + (xs.length === 1 ? plotW / 2 : (xs.indexOf(n) / (xs.length - 1)) * plotW);
  const y = (v: number) => PAD.top + plotH - (top === 0 ? 0 : (v / top) * plotH);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - PAD.right / 2 + PAD.left / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escape(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (top * i) / 5;
    out.push(
      `<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${PAD.left - 8}" y="${y(v) + 4}" text-anchor="end">${trim(v)}</text>`,
    );
  }
  for (const n of xs) {
    out.push(`<text x="${x(n)}" y="${PAD.top + plotH + 18}" text-anchor="middle">${n.toLocaleString("en-US")}</text>`);
  }
  out.push(
    `<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${H - 14}" text-anchor="middle">subscribers in the channel (N)</text>`,
    `<text transform="translate(18 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const shift = (i - (series.length - 1) / 2) * 6;
    const path = s.points.map((p, j) => `${j === 0 ? "M" : "L"}${x(p.x) + shift} ${y(p.median)}`).join(" ");
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of s.points) {
      const cx = x(p.x) + shift;
      out.push(
        `<line x1="${cx}" x2="${cx}" y1="${y(p.min)}" y2="${y(p.max)}" stroke="${s.color}"/>`,
        `<circle cx="${cx}" cy="${y(p.median)}" r="4" fill="${s.color}"/>`,
      );
    }
    const ly = PAD.top + 10 + i * 20;
    out.push(
      `<line x1="${W - PAD.right + 16}" x2="${W - PAD.right + 36}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${W - PAD.right + 42}" y="${ly + 4}">${escape(s.name)}</text>`,
    );
  });
  out.push(`<text x="${W - PAD.right + 16}" y="${PAD.top + 10 + series.length * 20 + 8}" fill="#666">median, min–max</text>`, "</svg>", "");
  return out.join("\n");
}

function niceCeiling(v: number): number {
  if (v <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * power >= v) return step * power;
  return 10 * power;
}

function trim(v: number): string {
  return Number(v.toPrecision(3)).toString();
}

function escape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
