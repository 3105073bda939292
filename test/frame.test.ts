// The pure codec: properties over arbitrary bytes and arbitrary splits (fast-check), plus fixed cases.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { encodeFrame, encodeFrames, FrameDecoder, MAX_PAYLOAD, type Frame } from "../src/protocol/frame.ts";
import { parseCommand } from "../src/protocol/command.ts";

/** Feeds `bytes` in pieces cut at `cuts` and collects every frame, copied out. */
function decodeSplit(bytes: Uint8Array, cuts: number[]): Frame[] {
  const decoder = new FrameDecoder();
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const frames: Frame[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    for (const f of decoder.push(bytes.subarray(from, point))) frames.push(copy(f));
    from = point;
  }
  return frames;
}

function copy(frame: Frame): Frame {
  return frame.kind === "payload" ? { kind: "payload", bytes: frame.bytes.slice() } : frame;
}

const payload = fc.uint8Array({ minLength: 1, maxLength: 300 });

describe("FrameDecoder properties", () => {
  test("valid frames split at any points decode to the same frames as fed whole", () => {
    fc.assert(
      fc.property(fc.array(payload, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (payloads, cuts) => {
        const bytes = concat(payloads.map(rawFrame));
        const whole = decodeSplit(bytes, []);
        expect(whole).toEqual(payloads.map((p) => ({ kind: "payload", bytes: p })));
        expect(decodeSplit(bytes, cuts)).toEqual(whole);
      }),
      { numRuns: 500 },
    );
  });

  test("arbitrary bytes never throw: they give frames, or frames then one bad-header and nothing after", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 30 }), (bytes, cuts) => {
        const whole = decodeSplit(bytes, []);
        const split = decodeSplit(bytes, cuts);
        expect(split).toEqual(whole);
        const bad = whole.findIndex((f) => f.kind === "bad-header");
        if (bad >= 0) expect(bad).toBe(whole.length - 1);
      }),
      { numRuns: 1000 },
    );
  });

  test("the decoder holds at most one incomplete frame", () => {
    fc.assert(
      fc.property(fc.array(payload, { minLength: 1, maxLength: 10 }), fc.nat(), (payloads, cut) => {
        const bytes = concat(payloads.map(rawFrame));
        const decoder = new FrameDecoder();
        decoder.push(bytes.subarray(0, cut % bytes.length));
        expect(decoder.pending).toBeLessThanOrEqual(5 + MAX_PAYLOAD);
      }),
    );
  });
});

describe("FrameDecoder cases", () => {
  test("00000 is goodbye; a non-digit header is reported once, then the decoder stays silent", () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(new TextEncoder().encode("00000"))).toEqual([{ kind: "goodbye" }]);
    expect(decoder.push(new TextEncoder().encode("0x001abc"))).toEqual([{ kind: "bad-header", header: "0x001" }]);
    expect(decoder.push(encodeFrame("[newuser]"))).toEqual([]);
  });

  test("a byte-at-a-time largest frame decodes without quadratic copying", () => {
    const bytes = encodeFrame("x".repeat(MAX_PAYLOAD));
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    for (let i = 0; i < bytes.length; i++) frames.push(...decoder.push(bytes.subarray(i, i + 1)));
    expect(frames).toHaveLength(1);
    expect((frames[0] as { bytes: Uint8Array }).bytes.length).toBe(MAX_PAYLOAD);
  });
});

describe("encoding", () => {
  test("encodeFrame pads the UTF-8 byte length to 5 digits", () => {
    expect(new TextDecoder().decode(encodeFrame("[ok] "))).toBe("00005[ok] ");
    expect(new TextDecoder().decode(encodeFrame("[ok] é"))).toBe("00007[ok] é");
    expect(() => encodeFrame("x".repeat(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });

  test("encodeFrames equals the concatenation of encodeFrame", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 50 }), { minLength: 1, maxLength: 10 }), (texts) => {
        expect(encodeFrames(texts)).toEqual(concat(texts.map(encodeFrame)));
      }),
    );
  });
});

describe("parseCommand", () => {
  test("name and data", () => {
    expect(parseCommand("[newuser]")).toEqual({ ok: true, value: { name: "newuser", data: "" } });
    expect(parseCommand("[whisper] 1!a b")).toEqual({ ok: true, value: { name: "whisper", data: "1!a b" } });
    expect(parseCommand("[x]y").ok).toBe(false);
    expect(parseCommand("x").ok).toBe(false);
  });
});

function rawFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out.set(new TextEncoder().encode(String(payload.length).padStart(5, "0")));
  out.set(payload, 5);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}
