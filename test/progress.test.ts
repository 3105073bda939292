// The CLI's progress line: redrawn in place on a terminal, silent everywhere else.

import { expect, test } from "bun:test";
import { createProgress } from "../src/cli/progress.ts";

function terminal(isTTY: boolean) {
  const written: string[] = [];
  return { isTTY, written, write: (text: string) => written.push(text) };
}

test("on a terminal: each update rewrites the line; clear and stop erase it", () => {
  const tty = terminal(true);
  const progress = createProgress(tty);
  progress.update("listening · 0 online");
  progress.update("listening · 1 online");
  progress.clear();
  progress.clear(); // nothing shown: nothing to erase
  progress.update("listening · 2 online");
  progress.stop();
  progress.stop();
  // Colours (SGR codes) come and go with the terminal; the redraw codes must not.
  expect(tty.written.map((text) => text.replace(/\x1b\[\d+m/g, ""))).toEqual([
    "\r\x1b[2K⠋ listening · 0 online",
    "\r\x1b[2K⠋ listening · 1 online",
    "\r\x1b[2K",
    "\r\x1b[2K⠋ listening · 2 online",
    "\r\x1b[2K",
  ]);
});

test("on a pipe or a file: nothing at all", () => {
  const pipe = terminal(false);
  const progress = createProgress(pipe);
  progress.update("members: 20000");
  progress.clear();
  progress.stop();
  expect(pipe.written).toEqual([]);
});
