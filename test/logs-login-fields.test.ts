// docs/operations/monitoring.md: "Events about a browser or a connection carry fields: user, reason,
// addr, code"; with --log-level debug "every login outcome (user ID: logged in, …) and every control
// connection is logged". A log shipper that searches user=N or addr=A must find a successful login and
// a control connection, not only the refusals: real server, real control connection, real browser.

import { expect, test } from "bun:test";
import { ControlClient, loggedIn, within } from "./helpers.ts";
import { LOOPBACK, MAIN, spawnServer } from "./process.ts";

test("JSON debug lines of a login and of a control connection carry user and addr fields", async () => {
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--log-format", "json", "--log-level", "debug"]);
  let user = 0;
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const [browser, who] = await loggedIn(server, ctl);
    user = who.id;
    browser.close();
    ctl.close();
    await within(ctl.closed, "the control connection's close");
    await Bun.sleep(200);
  } finally {
    expect(await server.stop()).toBe(0);
  }
  const entries = server.output().trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  const login = entries.find((e) => typeof e.msg === "string" && e.msg.includes("logged in"));
  const control = entries.filter((e) => typeof e.msg === "string" && e.msg.includes("control connection"));
  console.log(JSON.stringify(login), JSON.stringify(control));
  expect(login).toMatchObject({ user, addr: "127.0.0.1" });
  expect(control.length).toBeGreaterThan(0);
  for (const entry of control) expect(entry.addr).toBe("127.0.0.1");
}, 30_000);
