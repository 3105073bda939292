// --trusted-proxies: CIDR parsing and the X-Forwarded-For rule, as pure functions (the end-to-end
// cases with a real header are in test/logs-ops.test.ts).

import { expect, test } from "bun:test";
import { parseCidrs } from "../src/config/cidr.ts";
import { clientAddress } from "../src/transport/client-address.ts";
import { MAIN, LOOPBACK, runToExit } from "./process.ts";

const trusted = parseCidrs("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8");

test("a trusted peer: the right-most hop that is not itself a trusted proxy", () => {
  expect(clientAddress("127.0.0.1", "203.0.113.9", trusted)).toBe("203.0.113.9");
  expect(clientAddress("::ffff:127.0.0.1", "1.1.1.1, 203.0.113.9, 10.1.2.3", trusted)).toBe("203.0.113.9");
  expect(clientAddress("::1", "2001:db8::7", trusted)).toBe("2001:db8::7");
  expect(clientAddress("fd12::5", "198.51.100.1", trusted)).toBe("198.51.100.1");
  // Every hop trusted: the left-most, the closest to the browser that anyone vouches for.
  expect(clientAddress("127.0.0.1", "10.0.0.1, 10.0.0.2", trusted)).toBe("10.0.0.1");
});

test("an untrusted peer, no header or a garbled one: the socket's own address", () => {
  expect(clientAddress("8.8.8.8", "203.0.113.9", trusted)).toBe("8.8.8.8");
  expect(clientAddress("11.0.0.1", "203.0.113.9", trusted)).toBe("11.0.0.1");
  expect(clientAddress("127.0.0.1", null, trusted)).toBe("127.0.0.1");
  expect(clientAddress("127.0.0.1", "203.0.113.9, <script>", trusted)).toBe("127.0.0.1");
  expect(clientAddress("127.0.0.1", "203.0.113.9", [])).toBe("127.0.0.1");
});

test("bad ranges are refused, naming the entry; a bad --trusted-proxies exits 2", async () => {
  for (const bad of ["1.2.3.4/33", "10.0.0.0/x", "300.1.1.1", "example.com", "::1/129", "1::2::3"]) {
    expect(() => parseCidrs(bad)).toThrow(bad);
  }
  expect(parseCidrs("")).toEqual([]);
  const run = await runToExit(["bun", MAIN, ...LOOPBACK, "--trusted-proxies", "10.0.0.0/99"]);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain("10.0.0.0/99");
}, 20_000);
