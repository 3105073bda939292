// The backend examples in other languages, run as real processes against a real server: each creates
// a user, whispers to it and shouts to everyone, and the browsers check what they received.
// Python and bash are on every machine this project runs on; PHP and Go run only where installed.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, loggedIn, useServer } from "./helpers.ts";
import { ROOT, runToExit } from "./process.ts";

interface Example {
  language: string;
  /** The command that runs the example file. */
  run: (file: string) => string[];
  file: string;
  /** Present when the toolchain is missing here: the example is then skipped, saying why. */
  missing?: string;
}

const examples: Example[] = ([
  { language: "Python", file: "examples/python/backend.py", run: (f) => ["python3", f] },
  { language: "bash", file: "examples/shell/backend.sh", run: (f) => ["bash", f] },
  { language: "PHP", file: "examples/php/backend.php", run: (f) => ["php", f] },
  { language: "Go", file: "examples/go/backend.go", run: (f) => ["go", "run", f] },
] satisfies Example[]).map((e): Example => {
  const tool = e.run("")[0]!;
  return Bun.which(tool) ? e : { ...e, missing: `${tool} is not installed` };
});

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

for (const example of examples) {
  if (example.missing) console.warn(`SKIPPING the ${example.language} example: ${example.missing}`);
  describe.skipIf(Boolean(example.missing))(`${example.language} (${example.file})`, () => {
    test("creates a user, whispers to it and shouts to everyone", async () => {
      const [watcher] = await loggedIn(server, ctl);
      const env = { ...process.env, WEBTALK_PRIVATE: `127.0.0.1:${server.private.port}`, HOME: process.env.HOME ?? "/root" };
      const result = await runToExit(example.run(join(ROOT, example.file)), { env });
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const token = /token (\d+![\w-]+)/.exec(result.stdout)?.[1];
      expect(token).toBeDefined();
      const user = token!.split("!")[0];
      expect(result.stdout).toContain(`whisper to ${user}: message queued`);
      expect(result.stdout).toContain("shout to channel 1: message sent");

      // A browser already online got the shout; the new user's page, logging in now, gets the held whisper.
      expect(await watcher.messages.next("the shout")).toBe(`Hello, everyone (from ${example.language})`);
      const page = await Browser.open(server.publicUrl);
      page.send(token!);
      expect(await page.messages.next("the whisper")).toBe(`Hello, user ${user} (from ${example.language})`);
      page.close();
      watcher.close();
    }, 60_000);

    test("reads WEBTALK_PRIVATE in its :PORT form as loopback", async () => {
      const env = { ...process.env, WEBTALK_PRIVATE: `:${server.private.port}`, HOME: process.env.HOME ?? "/root" };
      const result = await runToExit(example.run(join(ROOT, example.file)), { env });
      expect(result.code).toBe(0);
      expect(result.stdout).toContain("shout to channel 1: message sent");
    }, 60_000);
  });
}
