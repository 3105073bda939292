// Address ranges (--trusted-proxies): parsing and matching, IPv4 and IPv6.

/** One `--trusted-proxies` entry: an address range in one family. */
export interface Cidr {
  v6: boolean;
  base: bigint;
  /** Leading bits that must match. */
  bits: number;
}

/** Parses `10.0.0.0/8,127.0.0.1,::1/128`; throws a message naming the bad entry. */
export function parseCidrs(raw: string): Cidr[] {
  return raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const [address = "", prefix, ...extra] = entry.split("/");
      const parsed = extra.length === 0 ? parseIp(address) : undefined;
      const max = parsed?.v6 ? 128 : 32;
      const bits = prefix === undefined ? max : /^\d+$/.test(prefix) ? Number(prefix) : NaN;
      if (!parsed || !(bits >= 0 && bits <= max)) throw new Error(`expected addresses or CIDR ranges like 10.0.0.0/8 or ::1, got ${entry}`);
      return { v6: parsed.v6, base: parsed.value, bits };
    });
}

/** Whether `address` (an IP address; anything else never matches) is inside one of the ranges. */
export function inCidrs(address: string, trusted: readonly Cidr[]): boolean {
  const ip = parseIp(address);
  if (!ip) return false;
  return trusted.some((cidr) => cidr.v6 === ip.v6 && sameLeadingBits(cidr.base, ip.value, cidr.bits, ip.v6 ? 128 : 32));
}

function sameLeadingBits(a: bigint, b: bigint, bits: number, width: number): boolean {
  const shift = BigInt(width - bits);
  return a >> shift === b >> shift;
}

export /** An IPv4 or IPv6 address as a number; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) counts as IPv4. */
function parseIp(text: string): { v6: boolean; value: bigint } | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  const v4 = parseV4(mapped ? mapped[1]! : text);
  if (v4 !== undefined) return { v6: false, value: v4 };
  const v6 = parseV6(text.replace(/^\[|\]$/g, ""));
  return v6 === undefined ? undefined : { v6: true, value: v6 };
}

function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((value, part) => (value << 8n) | BigInt(part), 0n);
}

function parseV6(text: string): bigint | undefined {
  if (!/^[0-9a-f:]+$/i.test(text) || text.split("::").length > 2) return undefined;
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...left, ...Array<string>(Math.max(0, missing)).fill("0"), ...right];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.reduce((value, group) => (value << 16n) | BigInt(parseInt(group, 16)), 0n);
}

export function isIp(text: string): boolean {
  return parseIp(text) !== undefined;
}
