import { colors } from "consola/utils";

/** One status line that rewrites itself in place, for operations that take a while. */
export interface Progress {
  /** Shows `text` as the current status. */
  update(text: string): void;
  /** Takes the line off the screen, so other output can be written; the next update brings it back. */
  clear(): void;
  /** Takes the line off for good. */
  stop(): void;
}

/** The interface of the stream the line is drawn on (process.stderr). */
export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const FRAME_MS = 80;

/**
 * A spinner and a status text on a terminal, in consola's colours. On anything but a terminal (a pipe,
 * a file, a script capturing stderr) it draws nothing: those readers want lines, not redraws.
 */
export function createProgress(stream: ProgressStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, clear() {}, stop() {} };
  let text: string | undefined;
  let frame = 0;
  let shown = false;
  const draw = () => {
    if (text === undefined) return;
    stream.write(`\r\x1b[2K${colors.cyan(FRAMES[frame % FRAMES.length]!)} ${text}`);
    shown = true;
  };
  const timer = setInterval(() => {
    frame++;
    draw();
  }, FRAME_MS);
  timer.unref();
  const clear = () => {
    if (shown) stream.write("\r\x1b[2K");
    shown = false;
  };
  return {
    update(next) {
      text = next;
      draw();
    },
    clear,
    stop() {
      clearInterval(timer);
      clear();
      text = undefined;
    },
  };
}
