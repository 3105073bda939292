// docs/operations/monitoring.md: "Events about a browser or a connection carry fields: `user` ...,
// `addr` ..." in --log-format json. A shipper that filters on user=ID or addr=IP must find the whole
// story of that user or address: its login, its replacement by a newer login, its control connections,
// not only the refusals and disconnections. Real server process, real WebSocket and TCP clients.

import { expect, test } from "bun:test";
import { ControlClient, within } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer } from "./process.ts";

type Entry = Record<string, unknown> & { msg: string };

test("json logs: a login, a replaced login and a control connection carry user / addr as fields", async () => {
  const server = await spawnServer([process.execPath, MAIN, ...LOOPBACK, "--log-format", "json", "--log-level", "debug", "--trusted-proxies", "127.0.0.1"]);
  let user = 0;
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const token = await ctl.ok("[newuser]");
    user = Number(token.split("!")[0]);
    const open = async () => {
      const ws = new WebSocket(server.publicUrl, { headers: { "X-Forwarded-For": "203.0.113.9" } } as unknown as string[]);
      await within(new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject))), "the upgrade");
      ws.send(token);
      return ws;
    };
    const first = await open();
    const firstClosed = new Promise<number>((resolve) => (first.onclose = (event) => resolve(event.code)));
    await Bun.sleep(200);
    const second = await open(); // replaces the first (--duplicate replace)
    expect(await within(firstClosed, "the replaced browser's close")).toBe(4002);
    await Bun.sleep(200);
    second.close();
    ctl.close();
    await Bun.sleep(300);
  } finally {
    expect(await server.stop()).toBe(0);
  }
  const entries = server
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Entry);
  const about = (pattern: RegExp) => entries.filter((entry) => pattern.test(entry.msg));

  const logins = about(/logged in/);
  expect(logins.length).toBe(2);
  for (const entry of logins) expect(entry).toMatchObject({ user, addr: "203.0.113.9" });

  const replaced = about(/replaces/);
  expect(replaced.length).toBe(1);
  expect(replaced[0]).toMatchObject({ user, addr: "203.0.113.9" });

  const control = about(/control connection/);
  expect(control.length).toBeGreaterThanOrEqual(2);
  for (const entry of control) expect(entry.addr).toBe("127.0.0.1");
}, 30_000);
